package threepid

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// identityDelegate speaks the identity service API's validation endpoints
// to the configured server.
type identityDelegate struct {
	base   string
	client *http.Client
}

func newIdentityDelegate(base string) *identityDelegate {
	return &identityDelegate{base: strings.TrimSuffix(base, "/"), client: &http.Client{Timeout: 10 * time.Second}}
}

func (d *identityDelegate) call(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}

// requestToken asks the identity server to text a token to the number.
func (d *identityDelegate) requestToken(ctx context.Context, r Request) (string, error) {
	in := map[string]any{"client_secret": r.ClientSecret, "country": r.Country, "phone_number": r.Phone, "send_attempt": r.SendAttempt}
	if r.NextLink != nil {
		in["next_link"] = *r.NextLink
	}
	var out struct {
		Sid string `json:"sid"`
	}
	status, err := d.call(ctx, http.MethodPost, "/_matrix/identity/api/v1/validate/msisdn/requestToken", in, &out)
	if err == nil && (status != http.StatusOK || out.Sid == "") {
		err = fmt.Errorf("identity server answered %d", status)
	}
	return out.Sid, err
}

// submitToken passes the user's token on to the identity server.
func (d *identityDelegate) submitToken(ctx context.Context, sid, clientSecret, token string) (bool, error) {
	var out struct {
		Success bool `json:"success"`
	}
	status, err := d.call(ctx, http.MethodPost, "/_matrix/identity/api/v1/validate/msisdn/submitToken",
		map[string]string{"sid": sid, "client_secret": clientSecret, "token": token}, &out)
	if err != nil {
		return false, err
	}
	return status == http.StatusOK && out.Success, nil
}

// validated asks the identity server which number the session validated.
func (d *identityDelegate) validated(ctx context.Context, sid, clientSecret string) (Validated, bool, error) {
	var out struct {
		Medium      string `json:"medium"`
		Address     string `json:"address"`
		ValidatedAt int64  `json:"validated_at"`
	}
	q := url.Values{"sid": {sid}, "client_secret": {clientSecret}}
	status, err := d.call(ctx, http.MethodGet, "/_matrix/identity/api/v1/3pid/getValidated3pid?"+q.Encode(), nil, &out)
	if err != nil {
		return Validated{}, false, err
	}
	if status != http.StatusOK || out.Medium != "msisdn" || out.Address == "" {
		return Validated{}, false, nil
	}
	return Validated{Medium: out.Medium, Address: out.Address, ValidatedAt: out.ValidatedAt}, true, nil
}
