package io.warren.client;

import org.junit.runner.Description;
import org.junit.runner.JUnitCore;
import org.junit.runner.Request;
import org.junit.runner.Result;
import org.junit.runner.manipulation.Filter;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;

/**
 * Runs every test class through JUnitCore, naming each test; exits non-zero
 * on a failure. Arguments choose some instead: {@code LockTest} (a class of
 * this package) or {@code LockTest#aMutexExcludes} (one test).
 */
public final class AllTests {
  private AllTests() {}

  /** The tests named as {@code Class} or {@code Class#method}. */
  private static Filter chosen(java.util.Set<String> names) {
    return new Filter() {
      @Override
      public boolean shouldRun(Description d) {
        if (d.isTest()) {
          String c = d.getTestClass().getSimpleName();
          return names.contains(c) || names.contains(c + "#" + d.getMethodName());
        }
        return d.getChildren().stream().anyMatch(this::shouldRun);
      }

      @Override
      public String describe() {
        return String.join(", ", names);
      }
    };
  }

  public static void main(String[] args) {
    Class<?>[] classes = {
      SharedPolicyTest.class, MessagingTest.class, MessagingWrapperTest.class, MessagingDepthTest.class, ElectorTest.class, ConfigWatcherTest.class,
      LockTest.class, FenceTest.class, TxnTest.class, RegistrationTest.class,
      SecurityTest.class, RetryBehaviourTest.class, FaultTest.class, OutageTest.class
    };
    JUnitCore core = new JUnitCore();
    core.addListener(new RunListener() {
      private long start;
      private boolean failed;

      @Override
      public void testStarted(Description d) {
        start = System.nanoTime();
        failed = false;
      }

      @Override
      public void testFailure(Failure f) {
        failed = true;
        System.out.println("  FAIL " + f.getDescription().getDisplayName() + ": " + f.getMessage());
        System.out.println(f.getTrace());
      }

      @Override
      public void testFinished(Description d) {
        if (!failed) {
          System.out.printf("  ok   %s (%.1fs)%n", d.getDisplayName(), (System.nanoTime() - start) / 1e9);
        }
      }
    });
    Request request = Request.classes(classes);
    if (args.length > 0) request = request.filterWith(chosen(java.util.Set.of(args)));
    Result r = core.run(request);
    System.out.printf("java tests: %d run, %d failed, %.1fs%n", r.getRunCount(), r.getFailureCount(), r.getRunTime() / 1e3);
    System.exit(r.wasSuccessful() ? 0 : 1);
  }
}
