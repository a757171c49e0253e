package threepid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"registrar/impl/config"
)

// smsSender posts SMS to the configured gateway.
type smsSender struct {
	cfg    config.SMSGateway
	client *http.Client
}

func newSMSSender(cfg config.SMSGateway) *smsSender {
	timeout := cfg.Timeout.Duration
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &smsSender{cfg: cfg, client: &http.Client{Timeout: timeout}}
}

func (s *smsSender) send(ctx context.Context, msisdn, text string) error {
	body, _ := json.Marshal(map[string]string{"to": "+" + msisdn, "text": text})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.BearerToken)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("SMS gateway answered " + resp.Status)
	}
	return nil
}
