package io.warren.client;

import static io.warren.client.TestSupport.await;
import static io.warren.client.TestSupport.unique;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;

import io.warren.v1.Leader;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.Test;

/** Elector against the live server in WARREN_ADDRESS. */
public class ElectorTest extends LiveServerTest {
  /** Records events of one elector. */
  static final class Recorder implements Elector.Listener {
    final List<String> events = new CopyOnWriteArrayList<>();
    final List<Leader> elected = new CopyOnWriteArrayList<>();
    final List<Elector.LossReason> lost = new CopyOnWriteArrayList<>();

    @Override
    public void onElected(Leader self) {
      elected.add(self);
      events.add("elected " + self.getFencingToken());
    }

    @Override
    public void onFollowing(Leader leader) {
      events.add("following " + (leader == null ? "nobody" : leader.getCandidateId()));
    }

    @Override
    public void onLost(Elector.LossReason reason) {
      lost.add(reason);
      events.add("lost " + reason);
    }
  }

  private static int leaders(List<Elector> electors) {
    int n = 0;
    for (Elector e : electors) if (e.isLeader()) n++;
    return n;
  }

  @Test
  public void exactlyOneOfThreeLeadsAndASuccessorHasAGreaterToken() throws Exception {
    String election = unique("java-election");
    List<Elector> electors = new ArrayList<>();
    List<Recorder> recorders = new ArrayList<>();
    try {
      for (int i = 0; i < 3; i++) {
        Recorder r = new Recorder();
        recorders.add(r);
        electors.add(
            warren.elect(new Elector.Options(election).candidateId("candidate-" + i), r));
      }
      await("one leader", WAIT, () -> leaders(electors) == 1);
      Elector first = null;
      for (Elector e : electors) if (e.isLeader()) first = e;
      Elector leader = first;
      // The others follow that leader.
      await("followers see the leader", WAIT, () -> {
        for (Elector e : electors) {
          if (e == leader) continue;
          Leader l = e.leader();
          if (l == null || !l.getCandidateId().equals(leader.candidateId())) return false;
        }
        return true;
      });
      assertEquals("exactly one leader", 1, leaders(electors));
      long token = leader.leader().getFencingToken();

      leader.close();
      Recorder leaderEvents = recorders.get(electors.indexOf(leader));
      await("the old leader reports RESIGNED", WAIT,
          () -> leaderEvents.lost.contains(Elector.LossReason.RESIGNED));
      electors.remove(leader);
      await("a successor", WAIT, () -> leaders(electors) == 1);
      Elector successor = electors.get(electors.get(0).isLeader() ? 0 : 1);
      assertNotNull(successor.leader());
      assertTrue("token grows: " + token + " -> " + successor.leader().getFencingToken(),
          successor.leader().getFencingToken() > token);
      assertEquals(1, leaders(electors));
    } finally {
      for (Elector e : electors) e.close();
    }
  }
}
