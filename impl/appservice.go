package impl

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"

	"registrar/api"
	"registrar/db"
	"registrar/impl/matrix"
)

// appService is one application service registration file (application
// service API, "Registration").
type appService struct {
	ID              string `yaml:"id"`
	URL             any    `yaml:"url"`
	ASToken         string `yaml:"as_token"`
	HSToken         string `yaml:"hs_token"`
	SenderLocalpart string `yaml:"sender_localpart"`
	Namespaces      struct {
		Users []struct {
			Regex     string `yaml:"regex"`
			Exclusive bool   `yaml:"exclusive"`
		} `yaml:"users"`
	} `yaml:"namespaces"`

	users []namespace
}

type namespace struct {
	re        *regexp.Regexp
	exclusive bool
}

// interested reports whether userID is in one of the service's user
// namespaces or is its sender.
func (a *appService) interested(userID, senderID string) bool {
	if userID == senderID {
		return true
	}
	for _, ns := range a.users {
		if ns.re.MatchString(userID) {
			return true
		}
	}
	return false
}

func (a *appService) exclusive(userID string) bool {
	for _, ns := range a.users {
		if ns.exclusive && ns.re.MatchString(userID) {
			return true
		}
	}
	return false
}

// loadAppServices reads app_service_config_files; ids and as_tokens must
// be unique. Namespace regexes match from the start of the user ID, as
// Synapse's re.match does.
func (c *Config) loadAppServices() error {
	c.appServices = nil
	ids, tokens := map[string]string{}, map[string]string{}
	for _, file := range c.AppServiceConfigFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("app_service_config_files: %w", err)
		}
		var as appService
		if err := yaml.Unmarshal(data, &as); err != nil {
			return fmt.Errorf("app_service_config_files: %s: %s", file, oneLine(err.Error()))
		}
		switch {
		case as.ID == "" || as.ASToken == "" || as.HSToken == "" || as.SenderLocalpart == "":
			return fmt.Errorf("app_service_config_files: %s: id, as_token, hs_token and sender_localpart are required", file)
		case ids[as.ID] != "":
			return fmt.Errorf("app_service_config_files: %s and %s share the id %q", ids[as.ID], file, as.ID)
		case tokens[as.ASToken] != "":
			return fmt.Errorf("app_service_config_files: %s and %s share an as_token", tokens[as.ASToken], file)
		}
		ids[as.ID], tokens[as.ASToken] = file, file
		for i, ns := range as.Namespaces.Users {
			re, err := regexp.Compile("^(?:" + ns.Regex + ")")
			if err != nil {
				return fmt.Errorf("app_service_config_files: %s: namespaces.users[%d].regex is not a valid regular expression", file, i)
			}
			as.users = append(as.users, namespace{re: re, exclusive: ns.Exclusive})
		}
		c.appServices = append(c.appServices, &as)
	}
	return nil
}

// appServiceIndex finds application services by token hash.
type appServiceIndex map[[32]byte]*appService

func newAppServiceIndex(services []*appService) appServiceIndex {
	idx := appServiceIndex{}
	for _, as := range services {
		idx[sha256.Sum256([]byte(as.ASToken))] = as
	}
	return idx
}

func (idx appServiceIndex) byToken(token string) *appService {
	if len(idx) == 0 {
		return nil
	}
	return idx[sha256.Sum256([]byte(token))]
}

// exclusiveOwner returns the application service whose exclusive
// namespace holds userID, or nil.
func (s *Server) exclusiveOwner(userID string) *appService {
	for _, as := range s.cfg.appServices {
		if as.exclusive(userID) {
			return as
		}
	}
	return nil
}

func isHistoricalLocalpart(lp string) bool {
	if lp == "" {
		return false
	}
	for i := 0; i < len(lp); i++ {
		if lp[i] < 0x21 || lp[i] > 0x7e || lp[i] == ':' {
			return false
		}
	}
	return true
}

// registerAppService is POST /register with type m.login.application_service
// (application service API, "Server admin style permissions"): no UIA, the
// username must be in the service's namespaces.
func (s *Server) registerAppService(ctx context.Context, body *api.RegisterJSONRequestBody) (api.RegisterResponseObject, error) {
	who := requesterFrom(ctx)
	if who == nil {
		return nil, matrix.ErrMissingToken
	}
	if who.AppService == nil {
		return nil, matrix.Forbidden("Invalid application service token.")
	}
	if body.Username == nil {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing username")
	}
	localpart := *body.Username
	userID := s.userID(localpart)
	if !isHistoricalLocalpart(localpart) || len(userID) > maxUserIDLength {
		return nil, matrix.BadRequest(matrix.CodeInvalidUsername, "Invalid user localpart")
	}
	as := who.AppService
	if !as.interested(userID, s.userID(as.SenderLocalpart)) {
		return nil, matrix.BadRequest(matrix.CodeExclusive, "Invalid user localpart for this application service.")
	}
	if owner := s.exclusiveOwner(userID); owner != nil && owner != as {
		return nil, matrix.BadRequest(matrix.CodeExclusive, "This user ID is reserved by an application service.")
	}
	reg := db.Registration{Account: db.Account{UserID: userID, LocalpartLower: lowerASCII(localpart), Kind: db.KindUser, AppserviceID: as.ID}}
	var out loginResult
	if !boolValue(body.InhibitLogin) {
		login, res, err := s.newLogin(body.DeviceId, body.InitialDeviceDisplayName, boolValue(body.RefreshToken))
		if err != nil {
			return nil, err
		}
		reg.Login, out = &login, res
	}
	err := s.store.Register(ctx, reg)
	if errors.Is(err, db.ErrUserExists) {
		return nil, matrix.BadRequest(matrix.CodeUserInUse, "User ID already taken.")
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	s.log.Info("application service registered user", "user_id", userID, "appservice", as.ID)
	return s.registerResponse(userID, registerParams{}, out), nil
}

// loginAppService is POST /login with m.login.application_service: the
// service logs in one of its users.
func (s *Server) loginAppService(ctx context.Context, body *api.LoginJSONRequestBody) (api.LoginResponseObject, error) {
	token := presentedToken(ctx)
	if token == "" {
		return nil, matrix.ErrMissingToken
	}
	as := s.appServices.byToken(token)
	if as == nil {
		return nil, matrix.Forbidden("Invalid application service token.")
	}
	if body.Identifier == nil || body.Identifier.Type != "m.id.user" || body.Identifier.User == nil {
		return nil, matrix.BadRequest(matrix.CodeMissingParam, "Missing identifier: an m.id.user is required")
	}
	localpart, ok := s.localpartOf(*body.Identifier.User)
	if !ok {
		return nil, matrix.Forbidden("Invalid username")
	}
	acct, err := s.store.Account(ctx, lowerASCII(localpart))
	if errors.Is(err, db.ErrNotFound) {
		return nil, matrix.Forbidden("Invalid username")
	}
	if err != nil {
		return nil, matrix.Internal(err)
	}
	if !as.interested(acct.UserID, s.userID(as.SenderLocalpart)) {
		return nil, matrix.BadRequest(matrix.CodeExclusive, "Invalid user for this application service.")
	}
	if acct.Deactivated() {
		return nil, &matrix.Error{Status: http.StatusForbidden, Code: matrix.CodeUserDeactivated, Message: "This account has been deactivated"}
	}
	return s.issueLoginResponse(ctx, acct.UserID, "", body)
}
