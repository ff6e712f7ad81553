// The PostgreSQL JDBC driver (pgjdbc), unmodified, through the Sluice gateway.
//
// Compiled and run by crates/postgres/tests/drivers.rs against a gateway in front of a fresh
// copy of tests/corpus/postgres/setup.sql, with a token for the fixture's `writer` role:
//
//     SLUICE_PG_HOST, SLUICE_PG_PORT, SLUICE_PG_DATABASE, SLUICE_PG_TOKEN
//
// Prints each check as it passes; exits non-zero with the failed expectation otherwise.

import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.postgresql.PGConnection;
import org.postgresql.PGStatement;
import org.postgresql.copy.CopyManager;
import org.postgresql.util.PSQLException;

public class JdbcCheck {
    static final class Failed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failed(String what) {
            super(what);
        }
    }

    interface SqlAction {
        void run() throws Exception;
    }

    static void expect(boolean cond, String what) {
        if (!cond) {
            throw new Failed(what);
        }
    }

    static void ok(String what) {
        System.out.println("ok: " + what);
        System.out.flush();
    }

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) {
            throw new Failed("environment variable " + name + " is not set");
        }
        return v;
    }

    /** Runs action, which must throw an SQLException with sqlState; returns it. */
    static SQLException expectError(String sqlState, SqlAction action, String what) throws Exception {
        try {
            action.run();
        } catch (SQLException e) {
            expect(sqlState.equals(e.getSQLState()),
                what + ": expected SQLSTATE " + sqlState + ", got " + e.getSQLState() + ": " + e);
            return e;
        }
        throw new Failed(what + ": expected SQLSTATE " + sqlState + ", but it succeeded");
    }

    static Connection connect(String password) throws SQLException {
        String url = "jdbc:postgresql://" + env("SLUICE_PG_HOST") + ":" + env("SLUICE_PG_PORT") + "/"
            + env("SLUICE_PG_DATABASE");
        Properties props = new Properties();
        props.setProperty("user", "agent");
        props.setProperty("password", password);
        props.setProperty("sslmode", "disable");
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "60");
        return DriverManager.getConnection(url, props);
    }

    static long scalarLong(Connection conn, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) {
                ps.setObject(i + 1, params[i]);
            }
            try (ResultSet rs = ps.executeQuery()) {
                expect(rs.next(), "no row from " + sql);
                return rs.getLong(1);
            }
        }
    }

    static void stillUsable(Connection conn, String after) throws SQLException {
        expect(scalarLong(conn, "SELECT count(*) FROM orders WHERE id = ?", 1) == 1,
            "session unusable after " + after);
    }

    static void checkConnect() throws Exception {
        try (Connection conn = connect(env("SLUICE_PG_TOKEN"));
             Statement st = conn.createStatement();
             ResultSet rs = st.executeQuery("SELECT 1")) {
            expect(rs.next() && rs.getInt(1) == 1, "SELECT 1");
        }
        ok("connects with a token as the password (SELECT 1)");
        SQLException e = expectError("28P01", () -> connect("not-a-token").close(), "login with a wrong token");
        ok("a wrong token is refused at login with 28P01: " + e.getMessage());
    }

    static void checkCopy(Connection conn) throws Exception {
        CopyManager copy = conn.unwrap(PGConnection.class).getCopyAPI();
        StringWriter out = new StringWriter();
        long n = copy.copyOut("COPY orders (id, total) TO STDOUT", out);
        expect(n == 3, "COPY TO STDOUT reported " + n + " rows");
        expect(out.toString().equals("1\t10.00\n2\t20.50\n3\t30.25\n"),
            "COPY TO STDOUT returned " + out);
        ok("CopyManager.copyOut(COPY orders TO STDOUT) returns the seed rows");

        n = copy.copyIn("COPY orders (customer_id, total, note) FROM STDIN",
            new StringReader("1\t1.00\tcopied\n2\t2.00\tcopied\n3\t3.00\tcopied\n"));
        expect(n == 3, "COPY FROM STDIN reported " + n + " rows");
        expect(scalarLong(conn, "SELECT count(*) FROM orders WHERE note = ?", "copied") == 3,
            "rows missing after COPY FROM STDIN");
        ok("CopyManager.copyIn(COPY orders FROM STDIN): 3 rows in");

        expectError("42501", () -> copy.copyOut("COPY secrets TO STDOUT", new StringWriter()),
            "COPY secrets TO STDOUT");
        stillUsable(conn, "a refused COPY TO");
        expectError("42501",
            () -> copy.copyIn("COPY secrets FROM STDIN", new StringReader("2\tplanted\n")),
            "COPY secrets FROM STDIN");
        stillUsable(conn, "a refused COPY FROM");
        ok("COPY secrets TO STDOUT / FROM STDIN refused with 42501; the session goes on");
    }

    static void checkPrepared(Connection conn) throws Exception {
        String sql = "SELECT id, customer_id, total, note FROM orders WHERE id = ?";
        try (PreparedStatement ps = conn.prepareStatement(sql)) {
            ps.setInt(1, 2);
            try (ResultSet rs = ps.executeQuery()) {
                expect(rs.next(), "no row for id 2");
                expect(rs.getInt(1) == 2 && rs.getInt(2) == 2
                        && rs.getBigDecimal(3).equals(new BigDecimal("20.50"))
                        && "DROP TABLE secrets".equals(rs.getString(4)),
                    "PreparedStatement returned " + rs.getInt(1) + ", " + rs.getBigDecimal(3));
                expect(!rs.next(), "more than one row for id 2");
            }
        }
        try (PreparedStatement ps = conn.prepareStatement("SELECT ?::int + 1, ?::text, ?::numeric * 2, ? IS NULL")) {
            ps.setInt(1, 41);
            ps.setString(2, "x'; DROP TABLE secrets; --");
            ps.setBigDecimal(3, new BigDecimal("1.25"));
            ps.setNull(4, java.sql.Types.VARCHAR);
            try (ResultSet rs = ps.executeQuery()) {
                expect(rs.next(), "no row");
                expect(rs.getInt(1) == 42 && rs.getString(2).equals("x'; DROP TABLE secrets; --")
                        && rs.getBigDecimal(3).compareTo(new BigDecimal("2.50")) == 0 && rs.getBoolean(4),
                    "typed parameters returned " + rs.getInt(1) + ", " + rs.getString(2) + ", "
                        + rs.getBigDecimal(3) + ", " + rs.getBoolean(4));
            }
        }
        ok("PreparedStatement: typed parameters and results");

        // Past prepareThreshold (5 by default) pgjdbc switches to a named server-side statement.
        try (PreparedStatement ps = conn.prepareStatement("SELECT total FROM orders WHERE id = ?")) {
            List<String> totals = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                ps.setInt(1, 1 + (i % 3));
                try (ResultSet rs = ps.executeQuery()) {
                    expect(rs.next(), "no row on execution " + i);
                    totals.add(rs.getBigDecimal(1).toPlainString());
                }
            }
            expect(totals.toString().equals("[10.00, 20.50, 30.25, 10.00, 20.50, 30.25, 10.00, 20.50]"),
                "repeated PreparedStatement returned " + totals);
            expect(ps.unwrap(PGStatement.class).isUseServerPrepare(),
                "pgjdbc did not switch to a server-prepared statement");
        }
        ok("PreparedStatement executed 8 times: switched to a named server-side statement");

        long id;
        try (PreparedStatement ps = conn.prepareStatement(
                "INSERT INTO orders (customer_id, total, note) VALUES (?, ?, ?) RETURNING id")) {
            ps.setInt(1, 1);
            ps.setBigDecimal(2, new BigDecimal("7.00"));
            ps.setString(3, "param-insert");
            try (ResultSet rs = ps.executeQuery()) {
                expect(rs.next(), "INSERT RETURNING gave no row");
                id = rs.getLong(1);
            }
        }
        try (PreparedStatement ps = conn.prepareStatement("UPDATE orders SET total = total + ? WHERE id = ?")) {
            ps.setBigDecimal(1, new BigDecimal("1.00"));
            ps.setLong(2, id);
            expect(ps.executeUpdate() == 1, "UPDATE did not update one row");
        }
        try (PreparedStatement ps = conn.prepareStatement("DELETE FROM orders WHERE id = ?")) {
            ps.setLong(1, id);
            expect(ps.executeUpdate() == 1, "DELETE did not delete one row");
        }
        ok("PreparedStatement INSERT ... RETURNING, UPDATE, DELETE on orders");

        try (PreparedStatement ps = conn.prepareStatement(
                "INSERT INTO orders (customer_id, total, note) VALUES (?, ?, ?)")) {
            for (int i = 1; i <= 3; i++) {
                ps.setInt(1, i);
                ps.setBigDecimal(2, new BigDecimal("0.10").multiply(BigDecimal.valueOf(i)));
                ps.setString(3, "batch");
                ps.addBatch();
            }
            int[] counts = ps.executeBatch();
            expect(counts.length == 3, "executeBatch returned " + counts.length + " counts");
        }
        expect(scalarLong(conn, "SELECT count(*) FROM orders WHERE note = ?", "batch") == 3,
            "rows missing after executeBatch");
        ok("PreparedStatement.executeBatch: 3 inserts in one round trip");
    }

    static void checkRefusals(Connection conn) throws Exception {
        try (Statement st = conn.createStatement()) {
            SQLException e = expectError("42501", () -> st.executeQuery("SELECT * FROM secrets").close(),
                "Statement SELECT * FROM secrets");
            String message = e instanceof PSQLException && ((PSQLException) e).getServerErrorMessage() != null
                ? ((PSQLException) e).getServerErrorMessage().getMessage() : e.getMessage();
            expect(message.startsWith("sluice: "), "refusal message " + message);
            stillUsable(conn, "a refused Statement");
            ok("Statement SELECT * FROM secrets: 42501 \"" + message + "\"; the session goes on");
        }
        try (PreparedStatement ps = conn.prepareStatement("SELECT secret FROM secrets WHERE id = ?")) {
            ps.setInt(1, 1);
            expectError("42501", () -> ps.executeQuery().close(), "PreparedStatement on secrets");
        }
        stillUsable(conn, "a refused PreparedStatement");
        try (PreparedStatement ps = conn.prepareStatement("DELETE FROM customers WHERE id = ?")) {
            ps.setInt(1, 1);
            expectError("42501", ps::executeUpdate, "PreparedStatement DELETE FROM customers");
        }
        stillUsable(conn, "a refused DELETE");
        ok("PreparedStatement SELECT on secrets and DELETE on customers: 42501; the session goes on");

        // In a transaction the refusal aborts it, as any error would.
        conn.setAutoCommit(false);
        try (PreparedStatement ins = conn.prepareStatement(
                "INSERT INTO orders (customer_id, total, note) VALUES (?, ?, ?)");
             Statement st = conn.createStatement()) {
            ins.setInt(1, 1);
            ins.setBigDecimal(2, new BigDecimal("9.99"));
            ins.setString(3, "rolled-back");
            ins.executeUpdate();
            expectError("42501", () -> st.executeQuery("SELECT * FROM secrets").close(),
                "refusal inside a transaction");
            expectError("25P02", () -> st.executeQuery("SELECT 1").close(),
                "statement after a refusal inside a transaction");
            conn.rollback();
        } finally {
            conn.setAutoCommit(true);
        }
        expect(scalarLong(conn, "SELECT count(*) FROM orders WHERE note = ?", "rolled-back") == 0,
            "the aborted transaction's insert survived");
        stillUsable(conn, "a refusal inside a transaction");
        ok("a refusal inside a transaction aborts it (next statement 25P02); rollback; the session goes on");

        // A refusal inside a batch.
        try (Statement st = conn.createStatement()) {
            st.addBatch("UPDATE orders SET note = note WHERE id = 1");
            st.addBatch("DELETE FROM secrets");
            st.addBatch("UPDATE orders SET note = note WHERE id = 2");
            expectError("42501", st::executeBatch, "batch with a refused statement");
        }
        stillUsable(conn, "a refusal inside a batch");
        ok("a refusal inside Statement.executeBatch: BatchUpdateException 42501; the session goes on");
    }

    static void checkCancel(Connection conn) throws Exception {
        try (Statement st = conn.createStatement()) {
            double t = timedCancel(st, () -> st.executeQuery("SELECT pg_sleep(30)").close(),
                "Statement.cancel() of pg_sleep(30)");
            ok(String.format("Statement.cancel() from another thread stops SELECT pg_sleep(30) with 57014 after %.1fs;"
                + " the session goes on", t));
        }
        try (PreparedStatement ps = conn.prepareStatement("SELECT pg_sleep(?)")) {
            ps.setInt(1, 30);
            double t = timedCancel(ps, () -> ps.executeQuery().close(), "PreparedStatement.cancel() of pg_sleep(?)");
            ok(String.format("PreparedStatement.cancel() stops SELECT pg_sleep(?) with 57014 after %.1fs", t));
        }
        try (Statement st = conn.createStatement()) {
            st.setQueryTimeout(1);
            long started = System.nanoTime();
            expectError("57014", () -> st.executeQuery("SELECT pg_sleep(30)").close(), "setQueryTimeout(1)");
            double t = (System.nanoTime() - started) / 1e9;
            expect(t < 20, "setQueryTimeout(1) took " + t + "s");
            stillUsable(conn, "a query timeout");
            ok(String.format("Statement.setQueryTimeout(1) cancels pg_sleep(30) with 57014 after %.1fs", t));
        }
    }

    static double timedCancel(Statement st, SqlAction action, String what) throws Exception {
        Thread canceller = new Thread(() -> {
            try {
                Thread.sleep(500);
                st.cancel();
            } catch (Exception e) {
                System.err.println(what + ": cancel failed: " + e);
            }
        });
        long started = System.nanoTime();
        canceller.start();
        try {
            expectError("57014", action, what);
        } finally {
            canceller.join();
        }
        double t = (System.nanoTime() - started) / 1e9;
        expect(t < 20, what + ": took " + t + "s to be cancelled");
        stillUsable(st.getConnection(), what);
        return t;
    }

    public static void main(String[] args) {
        try {
            Class.forName("org.postgresql.Driver");
        } catch (ClassNotFoundException e) {
            System.err.println("the PostgreSQL JDBC driver is not on the classpath (/usr/share/java/postgresql.jar,"
                + " Debian libpostgresql-jdbc-java; run scripts/ensure-deps.sh)");
            System.exit(2);
        }
        try {
            System.out.println("pgjdbc " + org.postgresql.util.DriverInfo.DRIVER_VERSION + " on Java "
                + System.getProperty("java.version"));
            checkConnect();
            try (Connection conn = connect(env("SLUICE_PG_TOKEN"))) {
                checkCopy(conn); // first: it expects the seed rows
                checkPrepared(conn);
                checkRefusals(conn);
                checkCancel(conn);
            }
            System.out.println("jdbc: all checks passed");
        } catch (Failed e) {
            System.err.println("FAILED: " + e.getMessage());
            System.exit(1);
        } catch (Throwable e) {
            System.err.println("FAILED with an unexpected exception:");
            e.printStackTrace();
            System.exit(1);
        }
    }
}
