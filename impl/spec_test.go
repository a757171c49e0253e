package impl_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"registrar/api"
)

// TestBundleIsValidOpenAPI30 loads the committed bundle and the embedded
// spec: both must be OpenAPI 3.0.x and pass kin-openapi's Validate.
func TestBundleIsValidOpenAPI30(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../spec/openapi.gen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := api.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]*openapi3.T{"bundle": doc, "embedded": embedded} {
		if !strings.HasPrefix(d.OpenAPI, "3.0.") {
			t.Errorf("%s: openapi %q, want 3.0.x", name, d.OpenAPI)
		}
		if err := d.Validate(context.Background()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if len(d.Servers) != 1 || d.Servers[0].URL != "/" {
			t.Errorf("%s: servers must be the single relative /", name)
		}
	}
	for _, p := range []string{
		"/_matrix/client/v3/register", "/_matrix/client/v3/register/available",
		"/_matrix/client/v3/account/password", "/_matrix/client/v3/account/deactivate",
		"/_matrix/client/v3/login", "/_matrix/client/v3/refresh", "/_matrix/client/v3/account/whoami",
		"/_matrix/client/versions", "/.well-known/matrix/client",
		"/_matrix/client/v1/register/m.login.registration_token/validity",
	} {
		if doc.Paths.Value(p) == nil {
			t.Errorf("bundle lacks %s", p)
		}
	}
}

// TestGeneratedFieldSets guards against schema corruption in bundling (a
// name collision once made the email request body lose its fields).
func TestGeneratedFieldSets(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want []string
	}{
		{"EmailValidationRequest", api.EmailValidationRequest{}, []string{"client_secret", "email", "id_access_token", "id_server", "next_link", "send_attempt"}},
		{"MsisdnValidationRequest", api.MsisdnValidationRequest{}, []string{"client_secret", "country", "id_access_token", "id_server", "next_link", "phone_number", "send_attempt"}},
		{"AuthResponse", api.AuthResponse{}, []string{"completed", "errcode", "error", "flows", "params", "session"}},
		{"Error", api.Error{}, []string{"errcode", "error"}},
		{"RateLimitError", api.RateLimitError{}, []string{"errcode", "error", "retry_after_ms"}},
		{"RegisterJSONBody", api.RegisterJSONBody{}, []string{"auth", "device_id", "guest_access_token", "inhibit_login", "initial_device_display_name", "password", "refresh_token", "type", "username"}},
		{"Register200JSONResponse", api.Register200JSONResponse{}, []string{"access_token", "device_id", "expires_in_ms", "home_server", "refresh_token", "user_id"}},
	}
	for _, tc := range cases {
		if got := jsonFields(tc.v); !slices.Equal(got, tc.want) {
			t.Errorf("%s fields = %v, want %v", tc.name, got, tc.want)
		}
	}
}
