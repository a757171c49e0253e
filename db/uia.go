package db

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// CreateUIASession stores a session's first progress; a session stored
// meanwhile by a concurrent request gives ErrConflict.
func (s *Store) CreateUIASession(ctx context.Context, sess UIASession) error {
	err := s.db.WithContext(ctx).Create(&sess).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return ErrConflict
	}
	return translate(err)
}

// UIASession returns the stored session, or ErrNotFound when it was never
// stored or has expired.
func (s *Store) UIASession(ctx context.Context, id string) (UIASession, error) {
	var sess UIASession
	err := s.db.WithContext(ctx).Where("session_id = ? AND expires_at > ?", id, s.nowMS()).Take(&sess).Error
	return sess, translate(err)
}

// UpdateUIASession stores the session's completed stages, data and
// consumption if nobody changed it since it was read at version
// sess.Version; otherwise it returns ErrConflict.
func (s *Store) UpdateUIASession(ctx context.Context, sess UIASession) error {
	return updateUIASession(s.db.WithContext(ctx), sess)
}

func updateUIASession(tx *gorm.DB, sess UIASession) error {
	res := tx.Model(&UIASession{}).
		Where("session_id = ? AND version = ?", sess.SessionID, sess.Version).
		Updates(map[string]any{"completed": sess.Completed, "data": sess.Data, "consumed": sess.Consumed,
			"flow_complete": sess.FlowComplete, "version": gorm.Expr("version + 1")})
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrConflict
	}
	return nil
}

// saveUIASession inserts the session, or updates it whatever its version
// (the caller's transaction decides the outcome by other means).
func saveUIASession(tx *gorm.DB, sess UIASession) error {
	return tx.Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "session_id"}},
		DoUpdates: clause.Assignments(map[string]any{"completed": sess.Completed, "data": sess.Data,
			"consumed": sess.Consumed, "flow_complete": sess.FlowComplete, "version": gorm.Expr("uia_sessions.version + 1")}),
	}).Create(&sess).Error
}

// InProgressUIASessions counts the stored sessions of key that are in
// progress (unexpired, unconsumed, no flow complete yet): those of the
// user key when byRequester, else those without a requester started from
// the client address key. oldestExpiry is when the first of them expires
// (0 when there are none).
func (s *Store) InProgressUIASessions(ctx context.Context, key string, byRequester bool) (n, oldestExpiry int64, err error) {
	cond := "client_addr = ? AND requester = ''"
	if byRequester {
		cond = "requester = ?"
	}
	var out struct {
		N      int64
		Oldest *int64
	}
	err = s.db.WithContext(ctx).Raw(`SELECT COUNT(*) AS n, MIN(expires_at) AS oldest FROM uia_sessions
		WHERE `+cond+` AND expires_at > ? AND NOT consumed AND NOT flow_complete`, key, s.nowMS()).Scan(&out).Error
	if out.Oldest != nil {
		oldestExpiry = *out.Oldest
	}
	return out.N, oldestExpiry, translate(err)
}

// DeleteExpiredUIASessions removes sessions past their expiry and returns
// how many went.
func (s *Store) DeleteExpiredUIASessions(ctx context.Context) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at <= ?", s.nowMS()).Delete(&UIASession{})
	return res.RowsAffected, translate(res.Error)
}
