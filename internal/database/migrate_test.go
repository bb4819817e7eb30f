package database_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
)

// emptyDatabase returns the URL of a database of this test with no
// migration history, and a connection to it.
func emptyDatabase(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	url := testenv.NewEmptyDatabase(t, "migrate")
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return url, conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func version(t *testing.T, conn *pgx.Conn) (v int64, dirty bool) {
	t.Helper()
	if err := conn.QueryRow(context.Background(), `SELECT version, dirty FROM schema_migrations`).Scan(&v, &dirty); err != nil {
		t.Fatal(err)
	}
	return v, dirty
}

// counterAnd is migration 2 of files after a first one that makes a
// counter at 0.
func counterAnd(files fstest.MapFS) fstest.MapFS {
	files["db/000001_counter.up.sql"] = testMigrations["db/000001_counter.up.sql"]
	files["db/000001_counter.down.sql"] = testMigrations["db/000001_counter.down.sql"]
	return files
}

// A migration that fails leaves golang-migrate's version dirty, which it
// refuses until someone forces it by hand: the service would never start
// again. The failed migration changed nothing, so the next start runs it
// again and, once what it needed is there, goes on.
func TestAMigrationThatFailedRunsAgainAtTheNextStart(t *testing.T) {
	t.Parallel()
	url, conn := emptyDatabase(t)
	files := counterAnd(fstest.MapFS{
		"db/000002_needs.up.sql":   {Data: []byte(`UPDATE counter SET n = n + 1; INSERT INTO needed VALUES (1);`)},
		"db/000002_needs.down.sql": {Data: []byte(`UPDATE counter SET n = n - 1;`)},
	})
	ctx := context.Background()
	if err := database.Migrate(ctx, url, files, "db"); err == nil {
		t.Fatal("migration 2 succeeded without the table it needs")
	}
	if v, dirty := version(t, conn); v != 2 || !dirty {
		t.Fatalf("after the failure: version %d dirty %t, want 2 dirty", v, dirty)
	}
	exec(t, conn, `CREATE TABLE needed (v int)`)
	if err := database.Migrate(ctx, url, files, "db"); err != nil {
		t.Fatalf("the next start: %v", err)
	}
	if v, dirty := version(t, conn); v != 2 || dirty {
		t.Errorf("version %d dirty %t, want 2 clean", v, dirty)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("counter = %d, want 1: the failed run must have changed nothing", n)
	}
}

// golang-migrate marks a migration clean in a transaction of its own after
// the migration's; a start that dies in between would leave a migration
// that did run looking like one that failed, and the next start would run
// it twice. Here that second transaction is refused (a trigger the
// migration itself installs), which is what such a death leaves behind.
func TestAMigrationThatRanIsNotRunAgainWhenItsCleanMarkIsLost(t *testing.T) {
	t.Parallel()
	url, conn := emptyDatabase(t)
	files := counterAnd(fstest.MapFS{
		"db/000002_more.up.sql": {Data: []byte(`
UPDATE counter SET n = n + 1;
CREATE FUNCTION refuse_clean_mark() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the clean mark is lost'; END $$;
CREATE TRIGGER refuse_clean_mark BEFORE INSERT ON schema_migrations FOR EACH ROW WHEN (NOT NEW.dirty) EXECUTE FUNCTION refuse_clean_mark();`)},
		"db/000002_more.down.sql": {Data: []byte(`UPDATE counter SET n = n - 1;`)},
	})
	ctx := context.Background()
	if err := database.Migrate(ctx, url, files, "db"); err == nil {
		t.Fatal("golang-migrate's clean mark went through the trigger that refuses it")
	}
	exec(t, conn, `DROP TRIGGER refuse_clean_mark ON schema_migrations; DROP FUNCTION refuse_clean_mark()`)
	if err := database.Migrate(ctx, url, files, "db"); err != nil {
		t.Fatalf("the next start: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("counter = %d, want 1: migration 2 ran %d times", n, n)
	}
	if v, dirty := version(t, conn); v != 2 || dirty {
		t.Errorf("version %d dirty %t, want 2 clean", v, dirty)
	}
}
