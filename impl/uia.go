package impl

import (
	"context"
	"slices"

	"registrar/api"
	"registrar/db"
	"registrar/impl/uia"
)

// newUIAEngine assembles the stages this configuration offers: which
// stages exist is decided here and nowhere else.
func (s *Server) newUIAEngine() (*uia.Engine, error) {
	stages := []uia.Stage{uia.Dummy{}, uia.Password{Verifier: s.accounts}}
	if s.upstream.Any() {
		stages = append(stages, uia.SSO{})
	}
	if s.factors != nil {
		stages = append(stages, uia.SecondFactor{})
	}
	if len(s.cfg.RegistrationTerms) > 0 {
		s.terms = uia.NewTerms(s.cfg.RegistrationTerms)
		stages = append(stages, s.terms)
	}
	if s.cfg.RegistrationRequiresToken {
		stages = append(stages, uia.RegistrationToken{Reserver: s.revoking})
	}
	if s.cfg.EnableRegistrationCaptcha {
		stages = append(stages, uia.Recaptcha{PublicKey: s.cfg.Captcha.RecaptchaPublicKey, Verifier: s.captcha})
	}
	if s.threepids.EmailEnabled() {
		stages = append(stages, uia.Threepid{AuthType: uia.TypeEmail, Medium: db.MediumEmail, Validator: threepidValidator{s.threepids}})
	}
	if s.threepids.MsisdnEnabled() {
		stages = append(stages, uia.Threepid{AuthType: uia.TypeMsisdn, Medium: db.MediumMsisdn, Validator: threepidValidator{s.threepids}})
	}
	return uia.New(uia.Config{Lifetime: s.cfg.UIAuth.SessionLifetime.Duration, MaxInProgress: s.cfg.UIAuth.MaxSessionsPerAddress,
		Secret: s.cfg.SecretKey(), Now: s.now, Metrics: s.metrics}, s.revoking, s.limits.uiaStart, stages...)
}

// uiaRequest describes a call of a protected endpoint by this request's
// client and requester.
func (s *Server) uiaRequest(ctx context.Context, method, path string, auth *api.AuthData, flows [][]string) *uia.Request {
	r := &uia.Request{Op: uia.Operation{Method: method, Path: path}, Auth: auth, Flows: flows,
		ClientIP: clientIP(ctx), ClientKey: addressKey(ctx)}
	if who := requesterFrom(ctx); who != nil {
		r.Requester = who.UserID
	}
	return r
}

// runUIA loads the request's session, if any, and runs its stage.
func (s *Server) runUIA(ctx context.Context, req *uia.Request) (*uia.Session, error) {
	sess, err := s.uia.Load(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.uia.Authenticate(ctx, sess, req)
}

// protect runs op once User-Interactive Authentication is complete,
// spending the session on it: a session authorises one successful
// operation (of concurrent requests, one runs it); when op fails the
// session is given back for a retry.
func (s *Server) protect(ctx context.Context, req *uia.Request, op func(*uia.Session) error) error {
	sess, err := s.runUIA(ctx, req)
	if err != nil {
		return err
	}
	if err := s.uia.Consume(ctx, sess); err != nil {
		return err
	}
	if err := op(sess); err != nil {
		s.uia.Release(context.WithoutCancel(ctx), sess)
		return err
	}
	return nil
}

// reauthFlows are the flows by which the logged-in user proves it is
// them: the password when the account has one (or a directory checks it),
// and m.login.sso (its fallback page) when it is linked to a configured
// identity provider.
func (s *Server) reauthFlows(ctx context.Context) [][]string {
	flows := s.firstFactorFlows(ctx)
	// An account with a second factor proves it too.
	if who := requesterFrom(ctx); who != nil && s.factors != nil {
		if sum, err := s.factors.Of(ctx, who.UserID); err == nil && sum.Enrolled() {
			for i := range flows {
				flows[i] = append(flows[i], uia.TypeSecondFactor)
			}
		}
	}
	return flows
}

// firstFactorFlows are reauthFlows' ways to prove the account: the
// password, or an identity provider.
func (s *Server) firstFactorFlows(ctx context.Context) [][]string {
	who := requesterFrom(ctx)
	if who == nil || !s.upstream.Any() {
		return [][]string{{uia.TypePassword}}
	}
	var flows [][]string
	acct, err := s.store.AccountByUserID(ctx, who.UserID)
	if err != nil || acct.PasswordHash != "" || s.directory != nil {
		flows = append(flows, []string{uia.TypePassword})
	}
	ids, err := s.store.ExternalIDs(ctx, who.UserID)
	if err == nil {
		for _, e := range ids {
			if _, ok := s.upstream.Provider(e.AuthProvider); ok {
				flows = append(flows, []string{uia.TypeSSO})
				break
			}
		}
	}
	if len(flows) == 0 {
		flows = [][]string{{uia.TypePassword}}
	}
	return flows
}

// registrationFlows are the UIA flows of /register, from config: the base
// flow with every configured requirement prepended (Synapse's
// _calculate_registration_flows).
func (s *Server) registrationFlows() [][]string {
	requireEmail := slices.Contains(s.cfg.RegistrationsRequire3PID, "email")
	requireMsisdn := slices.Contains(s.cfg.RegistrationsRequire3PID, "msisdn")
	email := s.threepids.EmailEnabled()
	msisdn := s.cfg.MsisdnEnabled() && !s.cfg.DisableMsisdnRegistration
	var flows [][]string
	if !requireEmail && !requireMsisdn {
		flows = append(flows, []string{uia.TypeDummy})
	}
	if email && !requireMsisdn {
		flows = append(flows, []string{uia.TypeEmail})
	}
	if msisdn {
		if !requireEmail {
			flows = append(flows, []string{uia.TypeMsisdn})
		}
		if email {
			flows = append(flows, []string{uia.TypeMsisdn, uia.TypeEmail})
		}
	}
	var prefix []string
	if s.cfg.RegistrationRequiresToken {
		prefix = append(prefix, uia.TypeRegistrationToken)
	}
	if s.cfg.EnableRegistrationCaptcha {
		prefix = append(prefix, uia.TypeRecaptcha)
	}
	if s.terms != nil {
		prefix = append(prefix, uia.TypeTerms)
	}
	for i, f := range flows {
		flows[i] = append(slices.Clone(prefix), f...)
	}
	return flows
}

// resetFlows are the flows of a password reset without an access token:
// a validated address bound to the account.
func (s *Server) resetFlows() [][]string {
	flows := [][]string{{uia.TypeEmail}}
	if s.cfg.MsisdnEnabled() {
		flows = append(flows, []string{uia.TypeMsisdn})
	}
	return flows
}
