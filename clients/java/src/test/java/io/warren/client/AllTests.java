package io.warren.client;

import org.junit.runner.Description;
import org.junit.runner.JUnitCore;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;

/** Runs every test class through JUnitCore, naming each test; exits non-zero on a failure. */
public final class AllTests {
  private AllTests() {}

  public static void main(String[] args) {
    Class<?>[] classes = {
      SharedPolicyTest.class, MessagingTest.class, ElectorTest.class, ConfigWatcherTest.class,
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
    Result r = core.run(classes);
    System.out.printf("java tests: %d run, %d failed, %.1fs%n", r.getRunCount(), r.getFailureCount(), r.getRunTime() / 1e3);
    System.exit(r.wasSuccessful() ? 0 : 1);
  }
}
