package accounts

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"registrar/db"
	"registrar/impl/appservice"
	"registrar/impl/matrix"
)

// Source is the way an account is made; the policy differs by source.
type Source int

// The ways of making an account.
const (
	// SourceRegister is POST /register by a user (UIA).
	SourceRegister Source = iota
	// SourceGuest is POST /register?kind=guest.
	SourceGuest
	// SourceAppService is an application service registering a user in
	// its namespace.
	SourceAppService
	// SourceSharedSecret is /_synapse/admin/v1/register.
	SourceSharedSecret
	// SourceOperator is the CLI or the admin API.
	SourceOperator
	// SourceSignUp is the OAuth 2.0 sign-up page.
	SourceSignUp
	// SourceSSO is a first sign-in with an upstream identity provider.
	SourceSSO
	// SourceLDAP is a first login with an LDAP directory's password.
	SourceLDAP
)

func (src Source) String() string {
	return [...]string{"user", "guest", "appservice", "shared-secret", "admin", "sign-up", "sso", "ldap"}[src]
}

// selfService sources are people signing themselves up: registration
// limits and the approval queue apply to them.
func (src Source) selfService() bool {
	return src == SourceRegister || src == SourceGuest || src == SourceSignUp || src == SourceSSO || src == SourceLDAP
}

// NewAccount is an account to make.
type NewAccount struct {
	Source Source
	// Localpart is the requested localpart, lower-cased (an application
	// service's is kept as given); "" generates one. Guests always get the
	// next numeric one.
	Localpart string
	// Password is hashed after the password policy; nil for none.
	Password    *string
	Admin       bool
	DisplayName string
	// AvatarURL, UserType and Locked are set by an admin creating the
	// account (the admin API).
	AvatarURL string
	UserType  *string
	Locked    bool
	// AwaitApproval puts the account in the approval queue.
	AwaitApproval bool
	// ConsentVersion records the terms accepted at registration (the
	// m.login.terms stage's result), with the time of creation.
	ConsentVersion string
	// AppService registers in its namespace (SourceAppService).
	AppService *appservice.Service
	// UpgradeGuest turns this guest account into the new account.
	UpgradeGuest string
	// Login is the login to issue with the account; nil for none.
	Login *LoginRequest
	// Record returns the UIA session to store with the registered user, so
	// that a retry returns the same account; nil for none.
	Record func(userID string) *db.UIASession
	// TokenReservation is the ID whose registration token use completes.
	TokenReservation string
	// Threepids are validated addresses to bind.
	Threepids []db.NewThreepid
	// ExternalIDs link the account to its upstream identities.
	ExternalIDs []db.ExternalID
	// ClientKey is the client address's rate-limit key.
	ClientKey string
}

// Created is a new account.
type Created struct {
	UserID string
	// Login is the login issued, nil when none was (asked, or allowed).
	Login *LoginResult
	// AwaitingApproval: an admin must approve the account before it logs
	// in (require_approval_for_new_accounts).
	AwaitingApproval bool
}

// ErrExternalIDTaken is an upstream identity linked to another account
// meanwhile.
var ErrExternalIDTaken = matrix.BadRequest(matrix.CodeUserInUse, "This identity is already linked to another account")

var (
	errTokenReservation = matrix.Forbidden("The registration token reservation of this session has expired; start again")
	errThreepidInUse    = matrix.BadRequest(matrix.CodeThreepidInUse, "The specified address is already in use")
	errThreepidDenied   = &matrix.Error{Status: http.StatusForbidden, Code: matrix.CodeThreepidDenied, Message: "Third-party identifier is not allowed"}
)

// Create makes an account: the one place accounts come from. It applies
// the policy of its source, hashes the password, and writes the account,
// its login, its addresses, its registration token use and its UIA
// record in one transaction; a name taken meanwhile is M_USER_IN_USE and
// leaves nothing behind.
func (s *Service) Create(ctx context.Context, n NewAccount) (created Created, err error) {
	defer func() { s.metrics.Registration(n.Source.String(), err) }()
	if err := s.checkNew(n); err != nil {
		return Created{}, err
	}
	hash := ""
	if n.Password != nil {
		var err error
		if hash, err = s.hasher.Hash(ctx, *n.Password); err != nil {
			return Created{}, matrix.Internal(err)
		}
	}
	if n.Source.selfService() {
		if err := s.TakeRegistration(n.ClientKey); err != nil {
			return Created{}, err
		}
	}
	for attempt := 0; ; attempt++ {
		created, err := s.insert(ctx, n, hash)
		if errors.Is(err, db.ErrUserExists) && (n.generated() || n.Source == SourceGuest) && attempt < 10 {
			continue // a generated name was taken meanwhile: draw another
		}
		return created, err
	}
}

// checkNew applies the policy of the source that needs no database.
func (s *Service) checkNew(n NewAccount) error {
	if n.Password != nil {
		if err := s.CheckPasswordPolicy(*n.Password); err != nil {
			return err
		}
	}
	for _, t := range n.Threepids {
		if n.Source != SourceOperator && !s.cfg.ThreepidAllowed(t.Medium, t.Address) {
			return errThreepidDenied
		}
	}
	switch {
	case n.Source == SourceGuest || n.UpgradeGuest != "" || n.generated():
		return nil
	case n.Source == SourceAppService:
		return s.appServiceRules(n.AppService, n.Localpart)
	}
	if err := s.usernameRules(n.Localpart, false); err != nil {
		return err
	}
	return nil
}

// appServiceRules: an application service registers in its own
// namespaces, with the historical grammar, nowhere another holds
// exclusively.
func (s *Service) appServiceRules(as *appservice.Service, localpart string) error {
	userID := s.UserID(localpart)
	if !isHistoricalLocalpart(localpart) || len(userID) > MaxUserIDLength {
		return matrix.BadRequest(matrix.CodeInvalidUsername, "Invalid user localpart")
	}
	if !as.Interested(userID, s.UserID(as.SenderLocalpart)) {
		return matrix.BadRequest(matrix.CodeExclusive, "Invalid user localpart for this application service.")
	}
	if owner := s.appServices.ExclusiveOwner(userID); owner != nil && owner != as {
		return matrix.BadRequest(matrix.CodeExclusive, "This user ID is reserved by an application service.")
	}
	return nil
}

// insert writes one attempt; db.ErrUserExists when the name is taken.
func (s *Service) insert(ctx context.Context, n NewAccount, hash string) (Created, error) {
	localpart, err := s.chooseLocalpart(ctx, n)
	if err != nil {
		return Created{}, err
	}
	reg := db.Registration{Account: db.Account{UserID: s.UserID(localpart), LocalpartLower: strings.ToLower(localpart),
		PasswordHash: hash, Kind: db.KindUser, Admin: n.Admin, DisplayName: n.DisplayName,
		AvatarURL: n.AvatarURL, UserType: n.UserType, Locked: n.Locked, ConsentVersion: n.ConsentVersion,
		ApprovalPending: n.AwaitApproval || s.cfg.RequireApprovalForNewAccounts && n.Source.selfService() && n.Source != SourceGuest},
		TokenSessionID: n.TokenReservation, Threepids: n.Threepids, ExternalIDs: n.ExternalIDs}
	if n.Source == SourceGuest {
		reg.Account.Kind = db.KindGuest
	}
	if n.AppService != nil {
		reg.Account.AppserviceID = n.AppService.ID
	}
	if n.UpgradeGuest != "" {
		reg.Account.UserID, reg.UpgradeGuest = n.UpgradeGuest, true
	}
	out := Created{UserID: reg.Account.UserID, AwaitingApproval: reg.Account.ApprovalPending}
	if n.Login != nil && !out.AwaitingApproval {
		login, res, err := s.prepareLogin(*n.Login)
		if err != nil {
			return Created{}, err
		}
		reg.Login, out.Login = &login, &res
	}
	if n.Record != nil {
		reg.Session = n.Record(out.UserID)
	}
	done, err := s.store.Register(ctx, reg)
	switch {
	case errors.Is(err, db.ErrUserExists):
		if n.generated() || n.Source == SourceGuest {
			return Created{}, err
		}
		return Created{}, ErrUserInUse
	case errors.Is(err, db.ErrTokenInvalid):
		return Created{}, errTokenReservation
	case errors.Is(err, db.ErrThreepidInUse):
		return Created{}, errThreepidInUse
	case errors.Is(err, db.ErrExternalIDTaken):
		return Created{}, ErrExternalIDTaken
	case err != nil:
		return Created{}, matrix.Internal(err)
	}
	if n.TokenReservation != "" {
		s.metrics.RegistrationTokenUsed(done.TokenExhausted)
	}
	if out.Login != nil {
		if err := s.EnsureSession(ctx, out.UserID, out.Login.DeviceID, true); err != nil {
			s.log.InfoContext(ctx, "registered user, but not logged in: the homeserver was not told", "user_id", out.UserID)
			return Created{}, err
		}
	} else if s.homeserver != nil {
		s.homeserver.Wake()
	}
	s.log.InfoContext(ctx, "registered user", "user_id", out.UserID, "kind", n.Source.String(), "guest_upgrade", reg.UpgradeGuest,
		"admin", n.Admin, "awaiting_approval", out.AwaitingApproval)
	return out, nil
}

// chooseLocalpart is the requested localpart, a generated one, or a
// guest's next numeric one.
func (s *Service) chooseLocalpart(ctx context.Context, n NewAccount) (string, error) {
	switch {
	case n.Source == SourceGuest:
		max, err := s.store.MaxNumericLocalpart(ctx)
		if err != nil {
			return "", matrix.Internal(err)
		}
		return strconv.FormatInt(max+1, 10), nil
	case n.generated():
		return generateLocalpart(), nil
	}
	return n.Localpart, nil
}

// generated: a person signing up without a username gets a generated one.
func (n NewAccount) generated() bool {
	return n.Localpart == "" && (n.Source == SourceRegister || n.Source == SourceSignUp)
}
