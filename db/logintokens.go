package db

import (
	"context"

	"gorm.io/gorm"
)

// CreateLoginToken stores a login token (by its hash) for the user, valid
// until expiresAtMS; expired ones are swept meanwhile.
func (s *Store) CreateLoginToken(ctx context.Context, userID, hash string, expiresAtMS int64) error {
	g := s.db.WithContext(ctx)
	now := s.nowMS()
	if err := g.Exec(`DELETE FROM login_tokens WHERE expires_at <= ?`, now).Error; err != nil {
		return translate(err)
	}
	return translate(g.Exec(`INSERT INTO login_tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		hash, userID, now, expiresAtMS).Error)
}

// UseLoginToken spends a login token: the user it was made for, once;
// ErrNotFound for an unknown, used or expired token.
func (s *Store) UseLoginToken(ctx context.Context, hash string) (string, error) {
	var userID string
	err := s.transaction(ctx, func(tx *gorm.DB) error {
		if err := tx.Raw(`SELECT user_id FROM login_tokens WHERE token_hash = ? AND expires_at > ?`, hash, s.nowMS()).Scan(&userID).Error; err != nil {
			return err
		}
		if userID == "" {
			return ErrNotFound
		}
		// Of concurrent uses, the one that deletes it logs in.
		res := tx.Exec(`DELETE FROM login_tokens WHERE token_hash = ?`, hash)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err == ErrNotFound {
		return "", err
	}
	return userID, translate(err)
}
