package io.lethe.neo4j;

import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.QueryExecutionException;
import org.neo4j.io.ByteUnit;
import org.neo4j.kernel.internal.Version;

/**
 * Runs the real Neo4j Community engine in-process with an authenticated Bolt listener, so the
 * project can talk to a genuine Neo4j over bolt:// on hosts where Docker is unavailable.
 *
 * <p>Usage: {@code Launcher --home DIR --password-file FILE [--bolt-port 7687] [--listen 127.0.0.1]
 * [--page-cache 1g]}. Exit codes: 2 bad arguments, 3 Bolt port already in use, 1 other start failure.
 */
public final class Launcher {
    private static final List<String> OPTIONS =
            List.of("--home", "--bolt-port", "--password-file", "--listen", "--page-cache");
    // Same rule the Neo4j Docker image and dbms.security.auth_minimum_password_length (default 8) apply.
    private static final int MIN_PASSWORD_LENGTH = 8;

    public static void main(String[] args) {
        Map<String, String> opts = parseArgs(args);
        Path home = Path.of(require(opts, "--home")).toAbsolutePath();
        String listen = opts.getOrDefault("--listen", "127.0.0.1");
        int port = parsePort(opts.getOrDefault("--bolt-port", "7687"));
        long pageCache = parseBytes(opts.getOrDefault("--page-cache", "1g"));
        String password = readPassword(Path.of(require(opts, "--password-file")));

        // Probe the port first: Neo4j's own bind error surfaces deep inside a lifecycle exception.
        checkPortFree(listen, port);
        try {
            Files.createDirectories(home);
        } catch (IOException e) {
            fail(2, "--home: cannot create " + home + ": " + e.getMessage());
        }

        // SIGTERM/SIGINT and System.exit (failed start) all end here: a clean shutdown checkpoints the
        // stores, so the next start on the same --home needs no recovery.
        AtomicReference<DatabaseManagementService> dbmsRef = new AtomicReference<>();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            DatabaseManagementService running = dbmsRef.getAndSet(null);
            if (running != null) running.shutdown();
            stopped.countDown();
        }, "lethe-neo4j-shutdown"));

        try { // data/ and logs/ (debug.log, security.log) are created under home
            DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                    .setConfig(GraphDatabaseSettings.auth_enabled, true)
                    .setConfig(BoltConnector.enabled, true)
                    .setConfig(BoltConnector.listen_address, new SocketAddress(listen, port))
                    .setConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                    // The HTTP server module is not on the classpath anyway; be explicit that only Bolt listens.
                    .setConfig(HttpConnector.enabled, false)
                    .setConfig(GraphDatabaseSettings.pagecache_memory, pageCache)
                    // Benchmarks write millions of records; keep only a couple of tx log files on disk.
                    .setConfig(GraphDatabaseSettings.keep_logical_logs, "2 files")
                    .setConfig(GraphDatabaseSettings.udc_enabled, false)
                    // Netty waits this many idle seconds per Bolt event-loop group (there are two) before
                    // exiting; the default 5 makes SIGTERM take ~12 s. Databases are already checkpointed by then.
                    .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 1)
                    .build();
            dbmsRef.set(dbms);
            setPassword(dbms, password);
        } catch (RuntimeException e) { // fail() exits through the shutdown hook, which stops Neo4j
            if (hasCause(e, BindException.class)) {
                fail(3, "Bolt port " + listen + ":" + port + " is already in use (" + e.getMessage() + ")");
            }
            e.printStackTrace();
            fail(1, "Neo4j failed to start: " + e);
        }

        // Single machine-readable line; callers wait for it before connecting.
        System.out.println("LETHE_NEO4J_READY bolt://" + SocketAddress.format(listen, port)
                + " version=" + Version.getNeo4jVersion());
        System.out.flush();
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Forces the neo4j user's password to the file's value on every start (idempotent). */
    private static void setPassword(DatabaseManagementService dbms, String password) {
        try {
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
        } catch (QueryExecutionException e) {
            // A restart with an unchanged password file is normal; Neo4j rejects "changing" to the same value.
            if (!String.valueOf(e.getMessage()).contains("Old password and new password cannot be the same")) {
                throw e;
            }
        }
    }

    private static Map<String, String> parseArgs(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (!OPTIONS.contains(arg)) {
                fail(2, "unknown argument: " + arg + " (expected one of " + OPTIONS + ")");
            }
            if (i + 1 >= args.length || args[i + 1].startsWith("--")) {
                fail(2, arg + ": missing value");
            }
            opts.put(arg, args[++i]);
        }
        return opts;
    }

    private static String require(Map<String, String> opts, String name) {
        String value = opts.get(name);
        if (value == null || value.isBlank()) {
            fail(2, name + ": required");
        }
        return value;
    }

    private static int parsePort(String value) {
        try {
            int port = Integer.parseInt(value);
            if (port >= 1 && port <= 65535) {
                return port;
            }
        } catch (NumberFormatException ignored) { // reported below
        }
        fail(2, "--bolt-port: not a TCP port: " + value);
        return -1;
    }

    private static long parseBytes(String value) {
        try {
            return ByteUnit.parse(value);
        } catch (RuntimeException e) {
            fail(2, "--page-cache: not a size like 512m or 1g: " + value);
            return -1;
        }
    }

    private static String readPassword(Path file) {
        String pw = null;
        try {
            // Strip only line endings: editors and `echo` add them, but other whitespace may be intended.
            pw = Files.readString(file, StandardCharsets.UTF_8).replaceAll("[\r\n]+$", "");
        } catch (IOException e) {
            fail(2, "--password-file: cannot read " + file + ": " + e);
        }
        if (pw.length() < MIN_PASSWORD_LENGTH) {
            fail(2, "--password-file: password must be at least " + MIN_PASSWORD_LENGTH + " characters");
        }
        return pw;
    }

    private static void checkPortFree(String host, int port) {
        InetSocketAddress address = new InetSocketAddress(host, port);
        if (address.isUnresolved()) {
            fail(2, "--listen: cannot resolve host " + host);
        }
        try (ServerSocket probe = new ServerSocket()) {
            probe.setReuseAddress(true); // same as Neo4j's Netty listener, so TIME_WAIT leftovers don't count
            probe.bind(address);
        } catch (IOException e) {
            fail(3, "Bolt port " + host + ":" + port + " is already in use or not bindable: " + e.getMessage());
        }
    }

    private static boolean hasCause(Throwable t, Class<? extends Throwable> type) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (type.isInstance(c)) return true;
        }
        return false;
    }

    private static void fail(int code, String message) {
        System.err.println("lethe-neo4j-launcher: " + message);
        System.exit(code);
    }
}
