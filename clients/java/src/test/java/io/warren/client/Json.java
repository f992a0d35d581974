package io.warren.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small JSON reader for the tests that compare the wrappers with the shared
 * files under clients/ (Debian's grpc-java brings no JSON library the tests
 * could use without a new dependency). Objects become {@code Map<String,
 * Object>}, arrays {@code List<Object>}, numbers {@code Double}.
 */
final class Json {
  private final String text;
  private int at;

  private Json(String text) {
    this.text = text;
  }

  static Object parse(String text) {
    Json p = new Json(text);
    Object value = p.value();
    p.space();
    if (p.at != text.length()) throw p.error("trailing text");
    return value;
  }

  /** Reads {@code clients/<name>}, found from the working directory upwards. */
  static Map<String, Object> readClientsFile(String name) throws IOException {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      Path candidate = dir.resolve("clients").resolve(name);
      if (Files.isRegularFile(candidate)) {
        return object(parse(Files.readString(candidate, StandardCharsets.UTF_8)));
      }
    }
    throw new IOException("no clients/" + name + " above " + Path.of("").toAbsolutePath());
  }

  @SuppressWarnings("unchecked")
  static Map<String, Object> object(Object value) {
    if (!(value instanceof Map)) throw new IllegalArgumentException("not a JSON object: " + value);
    return (Map<String, Object>) value;
  }

  private Object value() {
    space();
    if (at >= text.length()) throw error("unexpected end");
    char c = text.charAt(at);
    switch (c) {
      case '{':
        return objectBody();
      case '[':
        return arrayBody();
      case '"':
        return string();
      case 't':
        return literal("true", Boolean.TRUE);
      case 'f':
        return literal("false", Boolean.FALSE);
      case 'n':
        return literal("null", null);
      default:
        return number();
    }
  }

  private Map<String, Object> objectBody() {
    Map<String, Object> map = new LinkedHashMap<>();
    at++; // {
    space();
    if (peek('}')) return map;
    do {
      space();
      String key = string();
      space();
      expect(':');
      map.put(key, value());
      space();
    } while (take(','));
    expect('}');
    return map;
  }

  private List<Object> arrayBody() {
    List<Object> list = new ArrayList<>();
    at++; // [
    space();
    if (peek(']')) return list;
    do {
      list.add(value());
      space();
    } while (take(','));
    expect(']');
    return list;
  }

  private String string() {
    expect('"');
    StringBuilder out = new StringBuilder();
    while (at < text.length()) {
      char c = text.charAt(at++);
      if (c == '"') return out.toString();
      if (c != '\\') {
        out.append(c);
        continue;
      }
      char e = text.charAt(at++);
      switch (e) {
        case 'n':
          out.append('\n');
          break;
        case 't':
          out.append('\t');
          break;
        case 'r':
          out.append('\r');
          break;
        case 'b':
          out.append('\b');
          break;
        case 'f':
          out.append('\f');
          break;
        case 'u':
          out.append((char) Integer.parseInt(text.substring(at, at + 4), 16));
          at += 4;
          break;
        default: // " \ /
          out.append(e);
      }
    }
    throw error("unterminated string");
  }

  private Double number() {
    int start = at;
    while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) at++;
    if (start == at) throw error("unexpected character");
    return Double.valueOf(text.substring(start, at));
  }

  private Object literal(String word, Object value) {
    if (!text.startsWith(word, at)) throw error("expected " + word);
    at += word.length();
    return value;
  }

  private void space() {
    while (at < text.length() && Character.isWhitespace(text.charAt(at))) at++;
  }

  private boolean peek(char c) {
    if (at < text.length() && text.charAt(at) == c) {
      at++;
      return true;
    }
    return false;
  }

  private boolean take(char c) {
    space();
    return peek(c);
  }

  private void expect(char c) {
    if (!peek(c)) throw error("expected '" + c + "'");
  }

  private IllegalArgumentException error(String what) {
    return new IllegalArgumentException("JSON: " + what + " at offset " + at);
  }
}
