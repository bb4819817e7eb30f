package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
)

// released is the set of one database's migrations as a commit of the
// repository held it: what a binary built from that commit applied.
type released struct {
	commit string // abbreviated
	files  fstest.MapFS
}

// git runs git in this package's directory and returns its output.
func git(args ...string) (string, error) {
	out, err := exec.Command("git", args...).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, exit.Stderr)
	}
	return string(out), err
}

// needHistory fails the test, or skips it under -short, unless the
// repository's full history is at hand.
func needHistory(tb testing.TB) {
	tb.Helper()
	shallow, err := git("rev-parse", "--is-shallow-repository")
	switch {
	case err != nil:
		err = fmt.Errorf("not in a git work tree: %w", err)
	case strings.TrimSpace(shallow) != "false":
		err = errors.New("the clone is shallow")
	default:
		return
	}
	if testing.Short() {
		tb.Skipf("-short: the migrations' history is not at hand: %v", err)
	}
	tb.Fatalf("this test reads every released set of migrations from git history, which is not at hand: %v\n"+
		"run it in a full clone of the repository (git fetch --unshallow)", err)
}

// releasedSets returns every set of dir's migrations that a commit reachable
// from HEAD held, oldest first, one per commit that changed dir.
func releasedSets(tb testing.TB, dir string) []released {
	tb.Helper()
	needHistory(tb)
	log, err := git("log", "--reverse", "--format=%h", "--", dir)
	if err != nil {
		tb.Fatal(err)
	}
	var sets []released
	for _, commit := range strings.Fields(log) {
		names, err := git("ls-tree", "--name-only", commit, "--", dir+"/")
		if err != nil {
			tb.Fatal(err)
		}
		files := fstest.MapFS{}
		for _, path := range strings.Fields(names) {
			if !strings.HasSuffix(path, ".sql") {
				continue
			}
			body, err := git("show", commit+":./"+path)
			if err != nil {
				tb.Fatal(err)
			}
			files[dir+"/"+strings.TrimPrefix(path, dir+"/")] = &fstest.MapFile{Data: []byte(body)}
		}
		// A commit holding two migrations of one version could migrate no
		// database (golang-migrate refuses it), so it released nothing.
		if len(files) > 0 && !reusesAVersion(files) {
			sets = append(sets, released{commit: commit, files: files})
		}
	}
	if len(sets) == 0 {
		tb.Fatalf("no commit in the history holds migrations under %s", dir)
	}
	return sets
}

// sameFiles reports whether set holds exactly the files of dir in fsys.
func sameFiles(tb testing.TB, set fstest.MapFS, fsys fs.FS, dir string) bool {
	tb.Helper()
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		tb.Fatal(err)
	}
	if len(entries) != len(set) {
		return false
	}
	for _, e := range entries {
		body, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			tb.Fatal(err)
		}
		f, ok := set[dir+"/"+e.Name()]
		if !ok || string(f.Data) != string(body) {
			return false
		}
	}
	return true
}

// upAsReleased migrates the database up with files the way every released
// binary did: golang-migrate's Up, which refuses a dirty database.
func upAsReleased(ctx context.Context, dbURL string, files fs.FS, dir string) error {
	src, err := iofs.New(files, dir)
	if err != nil {
		return err
	}
	cfg, err := database.ParseURL(dbURL)
	if err != nil {
		return err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		return err
	}
	m, err := migrate.NewWithInstance("iofs", src, cfg.Database, driver)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return err
	}
	return nil
}

// connect opens a connection to dbURL for the rest of the test.
func connect(tb testing.TB, dbURL string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// schemaOf lists the tables' columns, constraints and indexes of the
// database, sorted, one line each: two databases with the same list take
// the same statements alike.
func schemaOf(tb testing.TB, dbURL string) []string {
	tb.Helper()
	ctx := context.Background()
	conn := connect(tb, dbURL)
	var schema []string
	for _, q := range []string{
		`SELECT format('column %s.%s %s %s default %s', table_name, column_name, data_type,
			CASE is_nullable WHEN 'YES' THEN 'null' ELSE 'not null' END, coalesce(column_default, '-'))
		FROM information_schema.columns WHERE table_schema = 'public'`,
		`SELECT format('constraint %s.%s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace`,
		`SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public'`,
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			tb.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			tb.Fatal(err)
		}
		schema = append(schema, lines...)
	}
	slices.Sort(schema)
	return schema
}

// versionOf returns the database's migration version and whether it is dirty.
func versionOf(tb testing.TB, dbURL string) (int64, bool) {
	tb.Helper()
	ctx := context.Background()
	conn := connect(tb, dbURL)
	var version int64
	var dirty bool
	if err := conn.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations`).Scan(&version, &dirty); err != nil {
		tb.Fatalf("read migration version: %v", err)
	}
	return version, dirty
}

// latest is the highest version among dir's migrations in fsys.
func latest(tb testing.TB, fsys fs.FS, dir string) int64 {
	tb.Helper()
	src, err := iofs.New(fsys, dir)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := src.First()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		next, err := src.Next(v)
		if err != nil {
			return int64(v)
		}
		v = next
	}
}

// upgradePaths are the ways a database may have come through the released
// sets before today's: created by any one of them and upgraded straight to
// today's, or created by one and taken through every later one.
func upgradePaths(sets []released) [][]released {
	var paths [][]released
	for i := range sets {
		paths = append(paths, sets[i:i+1])
		if i < len(sets)-1 {
			paths = append(paths, sets[i:])
		}
	}
	return paths
}

func pathName(path []released) string {
	var commits []string
	for _, s := range path {
		commits = append(commits, s.commit)
	}
	return strings.Join(commits, "-")
}

// Every database that a released binary migrated, whichever releases it
// went through (including one that a release left dirty), starts with
// today's binary: it ends clean at today's latest version with exactly
// the schema that today's migrations give a new database.
func TestADatabaseOfEveryReleaseUpgradesToTodaysSchema(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{migrations.Pay, migrations.Trade} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			var sets []released
			for _, s := range releasedSets(t, dir) {
				if !sameFiles(t, s.files, migrations.FS, dir) {
					sets = append(sets, s)
				}
			}
			want := schemaOf(t, testenv.NewDatabase(t, migrations.FS, dir))
			wantVersion := latest(t, migrations.FS, dir)
			for _, path := range upgradePaths(sets) {
				t.Run(pathName(path), func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					dbURL := testenv.NewEmptyDatabase(t, dir)
					for _, s := range path {
						// A release's own failure is history: the
						// database is left as that binary left it.
						if err := upAsReleased(ctx, dbURL, s.files, dir); err != nil {
							t.Logf("as released at %s: %v", s.commit, err)
						}
					}
					if err := database.Migrate(ctx, dbURL, migrations.FS, dir); err != nil {
						t.Fatalf("today's migrations on a database of %s: %v", pathName(path), err)
					}
					if v, dirty := versionOf(t, dbURL); v != wantVersion || dirty {
						t.Errorf("version %d (dirty %t), want %d clean", v, dirty, wantVersion)
					}
					got := schemaOf(t, dbURL)
					for _, line := range diff(got, want) {
						t.Error(line)
					}
				})
			}
		})
	}
}

// diff lists the lines only one of two sorted lists holds.
func diff(got, want []string) []string {
	var out []string
	for _, l := range got {
		if _, found := slices.BinarySearch(want, l); !found {
			out = append(out, "unexpected "+l)
		}
	}
	for _, l := range want {
		if _, found := slices.BinarySearch(got, l); !found {
			out = append(out, "missing "+l)
		}
	}
	return out
}

// reusesAVersion reports whether two migrations in files share a version.
func reusesAVersion(files fstest.MapFS) bool {
	names := map[string]string{}
	for path := range files {
		base := path[strings.LastIndex(path, "/")+1:]
		version, name, ok := strings.Cut(base, "_")
		if !ok {
			continue
		}
		name = strings.TrimSuffix(strings.TrimSuffix(name, ".up.sql"), ".down.sql")
		if seen, ok := names[version]; ok && seen != name {
			return true
		}
		names[version] = name
	}
	return false
}
