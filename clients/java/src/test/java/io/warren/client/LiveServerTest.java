package io.warren.client;

import java.time.Duration;
import org.junit.After;
import org.junit.Before;

/** A test against the live server in WARREN_ADDRESS, with a client of its own per test. */
public abstract class LiveServerTest {
  static final Duration WAIT = Duration.ofSeconds(20);
  Warren warren;

  @Before
  public void connect() {
    warren = Warren.connect(TestSupport.address());
  }

  @After
  public void disconnect() {
    warren.close();
  }
}
