package upstream

import (
	"strings"
	"testing"

	"registrar/impl/config"
)

func TestSynapseMappingTemplates(t *testing.T) {
	claims, _ := decodeClaims([]byte(`{"preferred_username": "Alice.L", "email": "Alice@Example.org", "id": 12345678901,
		"name": "Alice Liddell", "address": {"country": "GB"}, "groups": ["staff", "admins"], "verified": true}`))
	for tmpl, want := range map[string]string{
		"{{ user.preferred_username }}":                    "Alice.L",
		"{{ user.preferred_username | lower }}":            "alice.l",
		"{{user.email|localpart_from_email|lower}}":        "alice",
		"{{ user.id }}":                                    "12345678901",
		"{{ user.address.country }}-{{ user.name|upper }}": "GB-ALICE LIDDELL",
		"{{ user.missing }}":                               "",
		"plain":                                            "plain",
	} {
		c, err := compileMapping("t", tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tmpl, err)
		}
		if got, err := render(c, claims); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", tmpl, got, err, want)
		}
	}
	for _, bad := range []string{"{{ user.name | capitalize }}", "{% if user.x %}x{% endif %}", "{{ request.x }}", "{{ user.name() }}"} {
		if _, err := compileMapping("t", bad); err == nil || !strings.Contains(err.Error(), "t:") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	p := &Provider{cfg: config.OIDCProvider{AttributeRequirements: []config.AttributeRequirement{{Attribute: "groups", Value: "admins"},
		{Attribute: "verified", Value: "true"}, {Attribute: "address.country", OneOf: []string{"FR", "GB"}}},
		UserMappingProvider: config.UserMappingProvider{Config: config.UserMapping{SubjectClaim: "id"}}}}
	id, err := p.identity(claims)
	if err != nil || id.Subject != "12345678901" {
		t.Fatalf("%+v %v", id, err)
	}
	p.cfg.AttributeRequirements = append(p.cfg.AttributeRequirements, config.AttributeRequirement{Attribute: "groups", Value: "root"})
	if _, err := p.identity(claims); err == nil {
		t.Fatal("a missing group passed")
	}
}
