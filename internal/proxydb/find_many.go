package proxydb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rolesync/rolesync/internal/emailaddr"
)

// Lookup is one user to find, as Find takes it: the SSO user id and email.
type Lookup struct {
	UserID, Email string
}

// Found is Find's answer for one Lookup, with the row's teams array.
type Found struct {
	Row   Row
	Found bool
	// Err is an *AmbiguousError when several rows could be the user's
	// (Find's error); other errors fail the whole FindMany.
	Err error
	// Teams is the found row's teams array (LiteLLM keeps it in step with
	// the rosters), as UserTeams reads it.
	Teams []string
}

// MaxLookups is the most users one FindMany reads.
const MaxLookups = 1000

// candidatesPerLookup bounds the rows one FindMany reads, as Find's LIMIT
// 16 does for one user; a batch that reaches the bound (look-alike rows in
// the thousands) is answered by Find, one user at a time.
const candidatesPerLookup = 16

// findManySQL is findSQL for many users at once: the same three ways to a
// row (user_id, sso_user_id, ASCII-equal email), each its own branch
// through LiteLLM's index (the primary key, sso_user_id's unique index,
// user_email_lower_idx). Branches, not one WHERE of three ORs: pgx runs it
// as a prepared statement, and after five runs PostgreSQL may plan it
// once for any arrays (a generic plan), which for the ORs was a sequential
// scan of the whole table (100 ms for a batch of 200 among 10,000 rows,
// against 1-3 ms through the indexes). A row found by two branches comes
// twice; FindMany keeps it once.
const findManySQL = `(SELECT ` + findManyColumns + ` FROM "LiteLLM_UserTable" WHERE user_id = ANY($1)
UNION ALL SELECT ` + findManyColumns + ` FROM "LiteLLM_UserTable" WHERE sso_user_id = ANY($1)
UNION ALL SELECT ` + findManyColumns + ` FROM "LiteLLM_UserTable"
	WHERE lower(user_email) = ANY(ARRAY(SELECT lower(e) FROM unnest($2::text[]) e))
		AND translate(user_email, '` + emailaddr.SQLUpper + `', '` + emailaddr.SQLLower + `') = ANY($3))
LIMIT $4`

const findManyColumns = `user_id, COALESCE(sso_user_id, ''), COALESCE(user_email, ''), COALESCE(user_role, ''),
	COALESCE(metadata->'scim_active' = 'false'::jsonb, false), COALESCE(teams, '{}')`

// FindMany answers Find for every lookup (at most MaxLookups) in one
// statement: the drift checks of many users cost one query. Each answer is
// the row Find would return (Pick over the same candidates).
func (d *DB) FindMany(ctx context.Context, lookups []Lookup) (out []Found, err error) {
	if len(lookups) > MaxLookups {
		return nil, fmt.Errorf("proxydb: find %d users at once: at most %d", len(lookups), MaxLookups)
	}
	if len(lookups) == 0 {
		return nil, nil
	}
	defer func(start time.Time) { observe("find_many", start, err) }(time.Now())
	ids := make([]string, len(lookups))
	var emails, folded []string
	for i, l := range lookups {
		ids[i] = l.UserID
		if l.Email != "" {
			emails, folded = append(emails, l.Email), append(folded, emailaddr.Fold(l.Email))
		}
	}
	limit := candidatesPerLookup * len(lookups)
	rows, err := d.pool.Query(ctx, findManySQL, ids, emails, folded, limit)
	if err != nil {
		return nil, fmt.Errorf("proxydb: find %d users: %w", len(lookups), err)
	}
	var all []rowWithTeams
	read := 0
	seen := map[string]bool{}
	for rows.Next() {
		var r rowWithTeams
		if err := rows.Scan(&r.UserID, &r.SSOUserID, &r.Email, &r.Role, &r.Inactive, &r.teams); err != nil {
			rows.Close()
			return nil, fmt.Errorf("proxydb: find %d users: %w", len(lookups), err)
		}
		read++
		if !seen[r.UserID] { // found by more than one branch
			seen[r.UserID] = true
			all = append(all, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("proxydb: find %d users: %w", len(lookups), err)
	}
	if read >= limit {
		return d.findEach(ctx, lookups)
	}
	return pickMany(lookups, all), nil
}

type rowWithTeams struct {
	Row
	teams []string
}

// pickMany gives each lookup its candidates among rows (those Find's WHERE
// would return for it) and Picks among them.
func pickMany(lookups []Lookup, rows []rowWithTeams) []Found {
	byID := map[string][]int{}
	byEmail := map[string][]int{}
	for i, r := range rows {
		byID[r.UserID] = append(byID[r.UserID], i)
		if r.SSOUserID != "" && r.SSOUserID != r.UserID {
			byID[r.SSOUserID] = append(byID[r.SSOUserID], i)
		}
		if r.Email != "" {
			byEmail[emailaddr.Fold(r.Email)] = append(byEmail[emailaddr.Fold(r.Email)], i)
		}
	}
	out := make([]Found, len(lookups))
	for i, l := range lookups {
		seen := map[int]bool{}
		var candidates []Row
		add := func(idx []int) {
			for _, j := range idx {
				if !seen[j] {
					seen[j] = true
					candidates = append(candidates, rows[j].Row)
				}
			}
		}
		add(byID[l.UserID])
		if l.Email != "" {
			add(byEmail[emailaddr.Fold(l.Email)])
		}
		row, found, err := Pick(candidates, l.UserID, l.Email)
		out[i] = Found{Row: row, Found: found, Err: err}
		if found {
			for _, j := range byID[row.UserID] {
				if rows[j].UserID == row.UserID {
					out[i].Teams = rows[j].teams
				}
			}
		}
	}
	return out
}

// findEach answers every lookup with Find and UserTeams.
func (d *DB) findEach(ctx context.Context, lookups []Lookup) ([]Found, error) {
	out := make([]Found, len(lookups))
	for i, l := range lookups {
		row, found, err := d.Find(ctx, l.UserID, l.Email)
		var amb *AmbiguousError
		switch {
		case errors.As(err, &amb):
			out[i].Err = err
			continue
		case err != nil:
			return nil, err
		}
		out[i].Row, out[i].Found = row, found
		if found {
			if out[i].Teams, err = d.UserTeams(ctx, row.UserID); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
