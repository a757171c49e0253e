package db

import (
	"context"
	"encoding/json"

	"gorm.io/gorm"
)

// AuditEntry is what an admin did to an account: who, what, to whom, and
// the details (never a secret).
type AuditEntry struct {
	// Actor is the admin's user ID, or "cli:<os user>" for the operator's
	// commands.
	Actor string
	// Action names the change, e.g. "lock", "set_password".
	Action string
	// Target is the user ID changed.
	Target string
	// Detail holds the change's parameters.
	Detail map[string]any
}

// AuditRecord is a stored AuditEntry.
type AuditRecord struct {
	ID        int64  `gorm:"column:id;primaryKey"`
	CreatedAt int64  `gorm:"column:created_at;autoCreateTime:false"`
	Actor     string `gorm:"column:actor"`
	Action    string `gorm:"column:action"`
	Target    string `gorm:"column:target"`
	Detail    string `gorm:"column:detail"`
}

// TableName implements gorm's Tabler.
func (AuditRecord) TableName() string { return "admin_audit" }

type auditKey struct{}

// WithAudit returns ctx carrying an audit entry. Every write of the store
// that changes an account (its flags, password, devices, tokens,
// addresses, or the account itself) made with this context records the
// entry in its own transaction, so that a change and its record commit
// together or not at all.
func WithAudit(ctx context.Context, e AuditEntry) context.Context {
	return context.WithValue(ctx, auditKey{}, e)
}

// write runs fn in a transaction that also records the audit entry ctx
// carries, if any.
func (s *Store) write(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.transaction(ctx, func(tx *gorm.DB) error {
		if err := fn(tx); err != nil {
			return err
		}
		e, ok := ctx.Value(auditKey{}).(AuditEntry)
		if !ok {
			return nil
		}
		detail := []byte("{}")
		if len(e.Detail) > 0 {
			var err error
			if detail, err = json.Marshal(e.Detail); err != nil {
				return err
			}
		}
		return tx.Create(&AuditRecord{CreatedAt: s.nowMS(), Actor: e.Actor, Action: e.Action, Target: e.Target,
			Detail: string(detail)}).Error
	})
}

// AuditLog returns the newest audit records about target (every target
// when empty), newest first, at most limit.
func (s *Store) AuditLog(ctx context.Context, target string, limit int) ([]AuditRecord, error) {
	q := s.db.WithContext(ctx).Order("id DESC").Limit(limit)
	if target != "" {
		q = q.Where("target = ?", target)
	}
	var out []AuditRecord
	return out, translate(q.Find(&out).Error)
}
