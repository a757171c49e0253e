package db

import (
	"cmp"
	"context"
	"slices"
	"strings"
)

// Seen is a device's use from one address and user agent.
type Seen struct {
	UserID, DeviceID, IP, UserAgent string
	At                              int64
}

// ClientIP is an address and user agent a device was used from, and when
// last.
type ClientIP struct {
	UserID    string `gorm:"column:user_id"`
	DeviceID  string `gorm:"column:device_id"`
	IP        string `gorm:"column:ip"`
	UserAgent string `gorm:"column:user_agent"`
	LastSeen  int64  `gorm:"column:last_seen"`
}

// RecordSeen stores a batch of uses: each device's addresses (for whois),
// its last use, and its account's, with three statements per chunk of
// seenChunk uses. Uses of devices deleted meanwhile are dropped; an older
// use never overwrites a newer one, so instances may write in any order.
func (s *Store) RecordSeen(ctx context.Context, batch []Seen) error {
	byAddress, byDevice, byUser := newestUses(batch)
	g := s.db.WithContext(ctx)
	for _, chunk := range chunks(byAddress, seenChunk) {
		values, args := seenValues(chunk)
		err := g.Exec(`WITH v (user_id, device_id, ip, user_agent, at) AS (VALUES `+values+`)
			INSERT INTO client_ips (user_id, device_id, ip, user_agent, last_seen)
			SELECT v.user_id, v.device_id, v.ip, v.user_agent, v.at FROM v
			JOIN devices d ON d.user_id = v.user_id AND d.device_id = v.device_id WHERE true
			ON CONFLICT (user_id, device_id, ip, user_agent) DO UPDATE SET last_seen = excluded.last_seen
			WHERE excluded.last_seen > client_ips.last_seen`, args...).Error
		if err != nil {
			return translate(err)
		}
	}
	for _, chunk := range chunks(byDevice, seenChunk) {
		values, args := seenValues(chunk)
		err := g.Exec(`WITH v (user_id, device_id, ip, user_agent, at) AS (VALUES `+values+`)
			UPDATE devices SET last_seen_ip = v.ip, last_seen_user_agent = v.user_agent, last_seen_at = v.at FROM v
			WHERE devices.user_id = v.user_id AND devices.device_id = v.device_id
			AND (devices.last_seen_at IS NULL OR devices.last_seen_at < v.at)`, args...).Error
		if err != nil {
			return translate(err)
		}
	}
	for _, chunk := range chunks(byUser, seenChunk) {
		values, args := seenValues(chunk)
		err := g.Exec(`WITH v (user_id, device_id, ip, user_agent, at) AS (VALUES `+values+`)
			UPDATE accounts SET last_seen_at = v.at FROM v
			WHERE accounts.user_id = v.user_id AND (accounts.last_seen_at IS NULL OR accounts.last_seen_at < v.at)`, args...).Error
		if err != nil {
			return translate(err)
		}
	}
	return nil
}

// seenChunk is how many uses one statement writes.
const seenChunk = 500

// newestUses keeps the newest use per address, per device and per user,
// each sorted (so that concurrent writers lock rows in one order).
func newestUses(batch []Seen) (byAddress, byDevice, byUser []Seen) {
	type addressKey struct{ user, device, ip, agent string }
	type deviceKey struct{ user, device string }
	addresses, devices, users := map[addressKey]Seen{}, map[deviceKey]Seen{}, map[string]Seen{}
	for _, u := range batch {
		if k := (addressKey{u.UserID, u.DeviceID, u.IP, u.UserAgent}); u.At > addresses[k].At {
			addresses[k] = u
		}
		if k := (deviceKey{u.UserID, u.DeviceID}); u.At > devices[k].At {
			devices[k] = u
		}
		if u.At > users[u.UserID].At {
			users[u.UserID] = u
		}
	}
	return sortedUses(addresses), sortedUses(devices), sortedUses(users)
}

func sortedUses[K comparable](m map[K]Seen) []Seen {
	out := make([]Seen, 0, len(m))
	for _, u := range m {
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b Seen) int {
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.DeviceID, b.DeviceID), cmp.Compare(a.IP, b.IP),
			cmp.Compare(a.UserAgent, b.UserAgent))
	})
	return out
}

func chunks(uses []Seen, n int) [][]Seen {
	var out [][]Seen
	for len(uses) > 0 {
		k := min(n, len(uses))
		out = append(out, uses[:k])
		uses = uses[k:]
	}
	return out
}

// seenValues is the VALUES list of uses and its arguments.
func seenValues(uses []Seen) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, 5*len(uses))
	for i, u := range uses {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT))")
		args = append(args, u.UserID, u.DeviceID, u.IP, u.UserAgent, u.At)
	}
	return b.String(), args
}

// ClientIPs returns the addresses the user's visible devices were used
// from, newest first, at most limit.
func (s *Store) ClientIPs(ctx context.Context, userID string, limit int) ([]ClientIP, error) {
	var out []ClientIP
	err := s.db.WithContext(ctx).Raw(`SELECT c.user_id, c.device_id, c.ip, c.user_agent, c.last_seen
		FROM client_ips c JOIN devices d ON d.user_id = c.user_id AND d.device_id = c.device_id
		WHERE c.user_id = ? AND NOT d.hidden ORDER BY c.last_seen DESC LIMIT ?`, userID, limit).Scan(&out).Error
	return out, translate(err)
}

// DeleteClientIPsBefore forgets addresses last used before beforeMS
// (Synapse's user_ips_max_age).
func (s *Store) DeleteClientIPsBefore(ctx context.Context, beforeMS int64) (int64, error) {
	res := s.db.WithContext(ctx).Exec(`DELETE FROM client_ips WHERE last_seen < ?`, beforeMS)
	return res.RowsAffected, translate(res.Error)
}
