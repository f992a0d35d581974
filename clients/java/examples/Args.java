package io.warren.examples;

import java.util.HashMap;
import java.util.Map;

/** Tiny flag parser shared by the examples: --name=value or --flag. */
final class Args {
  private final Map<String, String> flags = new HashMap<>();

  Args(String[] args) {
    for (String a : args) {
      if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument: " + a);
      int eq = a.indexOf('=');
      if (eq < 0) flags.put(a.substring(2), "true");
      else flags.put(a.substring(2, eq), a.substring(eq + 1));
    }
  }

  /** The flag, else the environment variable, else the default. */
  String get(String flag, String env, String def) {
    String v = flags.get(flag);
    if (v == null && env != null) v = System.getenv(env);
    return v == null || v.isEmpty() ? def : v;
  }

  static String address() {
    String a = System.getenv("WARREN_ADDRESS");
    return a == null || a.isEmpty() ? "127.0.0.1:50051" : a;
  }
}
