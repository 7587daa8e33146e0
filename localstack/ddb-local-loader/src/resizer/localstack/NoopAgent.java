package resizer.localstack;

import java.lang.instrument.Instrumentation;

/**
 * A Java agent that does nothing.
 *
 * <p>LocalStack starts DynamoDB Local with {@code -javaagent:<lib>/dynamodb-local/2/ddb-local-loader-0.1.jar}.
 * Upstream that agent only lifts DynamoDB Local's 20-GSI-per-table limit, and LocalStack downloads it at
 * run time, which fails offline. The JVM refuses to start without a valid agent jar at that path, so the
 * project installs this one there instead (see localstack/install.sh). Resizer's tables use no GSIs.
 */
public final class NoopAgent {
    private NoopAgent() {}

    public static void premain(String args, Instrumentation instrumentation) {
        // Intentionally empty.
    }
}
