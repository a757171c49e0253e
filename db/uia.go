package db

import (
	"context"

	"gorm.io/gorm"
)

// CreateUIASession stores a new UIA session.
func (s *Store) CreateUIASession(ctx context.Context, sess UIASession) error {
	if sess.CreatedAt == 0 {
		sess.CreatedAt = s.nowMS()
	}
	return translate(s.db.WithContext(ctx).Create(&sess).Error)
}

// UIASession returns the session, or ErrNotFound when it does not exist or
// has expired.
func (s *Store) UIASession(ctx context.Context, id string) (UIASession, error) {
	var sess UIASession
	err := s.db.WithContext(ctx).Where("session_id = ? AND expires_at > ?", id, s.nowMS()).Take(&sess).Error
	return sess, translate(err)
}

// UpdateUIASession stores the session's completed stages, data and params
// if nobody changed it since it was read at version sess.Version;
// otherwise it returns ErrConflict.
func (s *Store) UpdateUIASession(ctx context.Context, sess UIASession) error {
	res := s.db.WithContext(ctx).Model(&UIASession{}).
		Where("session_id = ? AND version = ?", sess.SessionID, sess.Version).
		Updates(map[string]any{"completed": sess.Completed, "data": sess.Data, "params": sess.Params,
			"version": gorm.Expr("version + 1")})
	if res.Error != nil {
		return translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrConflict
	}
	return nil
}

// DeleteExpiredUIASessions removes sessions past their expiry and returns
// how many went.
func (s *Store) DeleteExpiredUIASessions(ctx context.Context) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at <= ?", s.nowMS()).Delete(&UIASession{})
	return res.RowsAffected, translate(res.Error)
}
