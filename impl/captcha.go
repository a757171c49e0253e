package impl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"registrar/impl/matrix"
	"registrar/impl/metrics"
	"registrar/impl/uia"
	"strings"
	"time"
)

// captchaVerifier verifies captcha responses server-side with the
// provider's siteverify API, sending the client's address.
type captchaVerifier struct {
	secret, siteverifyURL string
	client                *http.Client
	log                   *slog.Logger
	metrics               *metrics.Set
}

func newCaptchaVerifier(secret, siteverifyURL string, log *slog.Logger, m *metrics.Set) *captchaVerifier {
	return &captchaVerifier{secret: secret, siteverifyURL: siteverifyURL, client: &http.Client{Timeout: 10 * time.Second}, log: log, metrics: m}
}

// VerifyCaptcha implements uia.CaptchaVerifier: a refusal is a stage
// failure, an unreachable provider a server error.
func (v *captchaVerifier) VerifyCaptcha(ctx context.Context, response, ip string) error {
	err := v.verify(ctx, response, ip)
	switch {
	case err == nil:
		v.metrics.Captcha(metrics.Success)
	case errors.As(err, new(*uia.Failure)):
		v.metrics.Captcha(metrics.Failure)
	default:
		v.metrics.Captcha("unavailable")
	}
	return err
}

func (v *captchaVerifier) verify(ctx context.Context, response, ip string) error {
	form := url.Values{"secret": {v.secret}, "response": {response}}
	if ip != "" {
		form.Set("remoteip", ip)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.siteverifyURL, strings.NewReader(form.Encode()))
	if err != nil {
		return matrix.Internal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := v.client.Do(req)
	if err != nil {
		return matrix.Unavailable("Captcha verification is unavailable", err)
	}
	defer resp.Body.Close()
	var result struct {
		Success    bool     `json:"success"`
		ErrorCodes []string `json:"error-codes"`
	}
	if resp.StatusCode != http.StatusOK {
		return matrix.Unavailable("Captcha verification is unavailable", fmt.Errorf("siteverify answered %d", resp.StatusCode))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&result); err != nil {
		return matrix.Unavailable("Captcha verification is unavailable", err)
	}
	if !result.Success {
		v.log.InfoContext(ctx, "captcha refused", "error_codes", result.ErrorCodes)
		return uia.Fail(matrix.CodeUnauthorized, "Captcha failed")
	}
	return nil
}
