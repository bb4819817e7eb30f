package migrations_test

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/paytrade/paytrade/migrations"
)

// fileName is how golang-migrate names a migration here.
var fileName = regexp.MustCompile(`^(\d{6})_([a-z0-9_]+)\.(up|down)\.sql$`)

// A migration runs in one implicit transaction only if it holds no
// transaction control and nothing that refuses to run in a transaction;
// database.Migrate runs a failed one again on that ground.
var notAtomic = regexp.MustCompile(`(?im)^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION|END)\s*;|\bCONCURRENTLY\b|\bVACUUM\b`)

// outOfOrder are the migrations released with a number below one already
// released; a database created in between skipped them, and a later
// migration makes up for it. None may be added.
var outOfOrder = map[string]string{
	"pay/000002_password_lockout_deposit_keys": "000004 creates its tables where they are missing",
}

// migration is one version of one directory: its name and what its up and
// down files say.
type migration struct {
	name     string
	up, down bool
}

// versionsOf reads the migrations in dir of fsys by version, reporting
// every file that golang-migrate would misread.
func versionsOf(tb testing.TB, fsys fs.FS, dir string) map[int]*migration {
	tb.Helper()
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		tb.Fatal(err)
	}
	versions := map[int]*migration{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			tb.Errorf("%s/%s: not named NNNNNN_name.up.sql or NNNNNN_name.down.sql", dir, e.Name())
			continue
		}
		v, _ := strconv.Atoi(m[1])
		got, ok := versions[v]
		if !ok {
			got = &migration{name: m[2]}
			versions[v] = got
		}
		if got.name != m[2] {
			tb.Errorf("%s: version %s is both %s and %s", dir, m[1], got.name, m[2])
		}
		if m[3] == "up" {
			got.up = true
		} else {
			got.down = true
		}
	}
	return versions
}

func highest(versions map[int]*migration) int {
	top := 0
	for v := range versions {
		top = max(top, v)
	}
	return top
}

// Each version is one migration with an up and a down file, each runs in
// one transaction, and no migration is given a number that a released one
// had, or a number below one already released: a database migrated by that
// release would skip it for good (golang-migrate runs only what is above a
// database's version).
func TestMigrationsAreNumberedInOrderWithNoReuse(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{migrations.Pay, migrations.Trade} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			today := versionsOf(t, migrations.FS, dir)
			for v, m := range today {
				if !m.up || !m.down {
					t.Errorf("%s/%06d_%s: needs both an up and a down file", dir, v, m.name)
				}
				for _, kind := range []string{"up", "down"} {
					path := dir + "/" + strconv.Itoa(1e6 + v)[1:] + "_" + m.name + "." + kind + ".sql"
					body, err := fs.ReadFile(migrations.FS, path)
					if err != nil {
						continue
					}
					if s := notAtomic.FindString(string(body)); s != "" {
						t.Errorf("%s: %q cannot run in the migration's one transaction", path, strings.TrimSpace(s))
					}
				}
			}
			for _, set := range releasedSets(t, dir) {
				then := versionsOf(t, set.files, dir)
				for v, m := range then {
					if now, ok := today[v]; ok && now.name != m.name {
						t.Errorf("%s: version %06d is %s, but %s released it as %s", dir, v, now.name, set.commit, m.name)
					}
				}
				top := highest(then)
				for v, m := range today {
					id := dir + "/" + strconv.Itoa(1e6 + v)[1:] + "_" + m.name
					if _, released := then[v]; released || v > top || outOfOrder[id] != "" {
						continue
					}
					t.Errorf("%s: numbered below %06d, which %s released before it: a database migrated then never runs it", id, top, set.commit)
				}
			}
		})
	}
}
