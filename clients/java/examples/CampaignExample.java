package io.warren.examples;

import io.warren.client.Elector;
import io.warren.client.Warren;
import io.warren.v1.Leader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Campaigns in an election and prints every leadership event.
 *
 *   examples/run.sh campaign [--election=example] [--id=NAME] [--value=TEXT]
 *                            [--for=SECONDS] [--until-elected]
 *
 * Runs until Ctrl-C, or for --for seconds, or (--until-elected) until it
 * leads; then resigns.
 */
public final class CampaignExample {
  public static void main(String[] argv) throws Exception {
    Args args = new Args(argv);
    String election = args.get("election", "WARREN_ELECTION", "example");
    String id = args.get("id", null, "java-" + ProcessHandle.current().pid());
    String value = args.get("value", null, "pid " + ProcessHandle.current().pid());
    boolean untilElected = Boolean.parseBoolean(args.get("until-elected", null, "false"));
    long seconds = Long.parseLong(args.get("for", null, "0"));
    CountDownLatch elected = new CountDownLatch(1);

    try (Warren warren = Warren.connect(Args.address())) {
      Elector elector = warren.elect(
          new Elector.Options(election).candidateId(id).value(value.getBytes(StandardCharsets.UTF_8)),
          new Elector.Listener() {
            @Override
            public void onElected(Leader self) {
              System.out.println("elected: I (" + self.getCandidateId() + ") lead \"" + election
                  + "\", fencing token " + self.getFencingToken());
              elected.countDown();
            }

            @Override
            public void onFollowing(Leader leader) {
              System.out.println(leader == null
                  ? "following: nobody leads right now"
                  : "following: the leader is " + leader.getCandidateId() + " (value \""
                      + leader.getValue().toStringUtf8() + "\", token " + leader.getFencingToken() + ")");
            }

            @Override
            public void onLost(Elector.LossReason reason) {
              System.out.println("lost leadership: " + reason);
            }

            @Override
            public void onError(io.grpc.Status status) {
              System.out.println("campaign failed: " + status);
            }
          });
      Runtime.getRuntime().addShutdownHook(new Thread(elector::close)); // resign on Ctrl-C
      System.out.println("campaigning in \"" + election + "\" as " + id);
      if (untilElected) {
        if (!elected.await(30, TimeUnit.SECONDS)) {
          System.out.println("not elected within 30s");
          System.exit(1);
        }
      } else if (seconds > 0) {
        Thread.sleep(Duration.ofSeconds(seconds).toMillis()); // the example's lifetime, not a sync
      } else {
        Thread.currentThread().join(); // until Ctrl-C
      }
      elector.close();
      System.out.println("resigned");
    }
  }
}
