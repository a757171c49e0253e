package canonical

import "testing"

func TestEmail(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.ORG": "alice@example.org", " bob@x.org ": "bob@x.org", "Bob <bob@x.org>": "", "not-an-address": "", "a@": "",
	} {
		if got := Email(in); got != want {
			t.Errorf("Email(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMsisdn(t *testing.T) {
	for _, tc := range []struct{ country, phone, want string }{
		{"GB", "07911 123456", "447911123456"}, {"gb", "+44 7911 123456", "447911123456"}, {"US", "(201) 555-0123", "12015550123"},
		{"GB", "123", ""}, {"ZZ", "07700 900123", ""},
	} {
		if got := Msisdn(tc.country, tc.phone); got != tc.want {
			t.Errorf("Msisdn(%q, %q) = %q, want %q", tc.country, tc.phone, got, tc.want)
		}
	}
}
