package impl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"registrar/impl/matrix"
	"strings"
	"time"
)

// CaptchaConfig is Synapse's captcha options plus Dendrite's widget
// options, so that reCAPTCHA, hCaptcha and Cloudflare Turnstile all work:
// each has a siteverify endpoint taking secret, response and remoteip.
type CaptchaConfig struct {
	RecaptchaPublicKey      string `yaml:"recaptcha_public_key"`
	RecaptchaPrivateKey     string `yaml:"recaptcha_private_key"`
	RecaptchaPrivateKeyPath string `yaml:"recaptcha_private_key_path"`
	RecaptchaSiteverifyAPI  string `yaml:"recaptcha_siteverify_api"`
	// RecaptchaAPIJSURL is the widget script of the fallback page.
	RecaptchaAPIJSURL string `yaml:"recaptcha_api_js_url"`
	// RecaptchaSitekeyClass is the CSS class the widget script looks for.
	RecaptchaSitekeyClass string `yaml:"recaptcha_sitekey_class"`
}

// recaptchaStage is m.login.recaptcha: the client's captcha response is
// verified server-side with the provider's siteverify API, sending the
// client's address.
type recaptchaStage struct {
	s      *Server
	client *http.Client
}

func newRecaptchaStage(s *Server) recaptchaStage {
	return recaptchaStage{s: s, client: &http.Client{Timeout: 10 * time.Second}}
}

func (st recaptchaStage) Params() map[string]any {
	return map[string]any{"public_key": st.s.cfg.Captcha.RecaptchaPublicKey}
}

func (st recaptchaStage) Check(ctx context.Context, a *stageAttempt) (string, error) {
	if a.Auth.Response == nil || *a.Auth.Response == "" {
		return "", failStage(matrix.CodeCaptchaNeeded, "Captcha response is required")
	}
	return st.verify(ctx, *a.Auth.Response, clientIP(ctx))
}

// verify asks the siteverify API; a refusal is a stage failure, an
// unreachable provider a server error.
func (st recaptchaStage) verify(ctx context.Context, response, ip string) (string, error) {
	form := url.Values{"secret": {st.s.cfg.captchaSecret}, "response": {response}}
	if ip != "" {
		form.Set("remoteip", ip)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.s.cfg.Captcha.RecaptchaSiteverifyAPI, strings.NewReader(form.Encode()))
	if err != nil {
		return "", matrix.Internal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := st.client.Do(req)
	if err != nil {
		return "", &matrix.Error{Status: http.StatusServiceUnavailable, Code: matrix.CodeUnknown, Message: "Captcha verification is unavailable", Internal: err}
	}
	defer resp.Body.Close()
	var result struct {
		Success    bool     `json:"success"`
		ErrorCodes []string `json:"error-codes"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", &matrix.Error{Status: http.StatusServiceUnavailable, Code: matrix.CodeUnknown, Message: "Captcha verification is unavailable",
			Internal: fmt.Errorf("siteverify answered %d", resp.StatusCode)}
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&result); err != nil {
		return "", &matrix.Error{Status: http.StatusServiceUnavailable, Code: matrix.CodeUnknown, Message: "Captcha verification is unavailable", Internal: err}
	}
	if !result.Success {
		st.s.log.Info("captcha refused", "error_codes", result.ErrorCodes)
		return "", failStage(matrix.CodeUnauthorized, "Captcha failed")
	}
	return "true", nil
}
