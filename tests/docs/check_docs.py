#!/usr/bin/env python3
"""Checks that the documentation says what the repository does.

- The retry table of docs/semantics.md is clients/retry-policy.json (every
  code with its number, unary and stream rule; the backoff and the channel
  settings), and its defaults table is clients/defaults.json: the wrappers'
  tests read the JSON files, so a document that drifts from them misleads.
- No tracked file refers to a document outside the repository: every
  Markdown name in capitals (like README.md) is a file of the repository,
  every ../ path leads to something in it, and every docs/*.md exists.
- Every relative link of every tracked Markdown file reaches a file, and
  its #anchor a heading of that file.
- Every warrend flag (ABSL_FLAG in server/daemon/) is in the settings of
  docs/operations.md.
- README.md stays a front door: under 250 lines.

Usage: check_docs.py [REPOSITORY_ROOT]. Exit status 1 lists every finding.
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), '..', '..'))
SELF = 'tests/docs/check_docs.py'  # names what it forbids
README_MAX_LINES = 250

findings = []


def finding(message):
    findings.append(message)


def read(path):
    with open(os.path.join(ROOT, path), encoding='utf-8') as f:
        return f.read()


def tracked_files():
    """The repository's files: git's list, or a walk without build output."""
    try:
        out = subprocess.run(['git', '-C', ROOT, 'ls-files', '-z'],
                             check=True, capture_output=True).stdout
        return [p for p in out.decode().split('\0')
                if p and os.path.isfile(os.path.join(ROOT, p))]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for top, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in
                       ('.git', 'build', '.stack', '.cache', 'node_modules')]
            files += [os.path.relpath(os.path.join(top, n), ROOT)
                      for n in names]
        return files


def text_of(path):
    try:
        data = open(os.path.join(ROOT, path), 'rb').read()
    except OSError:
        return None
    if b'\0' in data[:8192]:
        return None
    return data.decode('utf-8', errors='replace')


# ---- tables of docs/semantics.md ------------------------------------------

def table_after(text, marker):
    """Rows (lists of cells) of the first Markdown table after `marker`."""
    at = text.find(marker)
    if at < 0:
        finding(f'docs/semantics.md: marker {marker!r} not found')
        return []
    rows = []
    started = False
    for line in text[at + len(marker):].splitlines():
        if line.startswith('|'):
            started = True
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if all(re.fullmatch(r':?-+:?', c) for c in cells):
                continue
            rows.append(cells)
        elif started:
            break
    return rows[1:]  # without the header


def unquote(cell):
    return cell.strip().strip('`').strip()


def leaves(prefix, value):
    """Flattens a JSON object to dotted keys, without its `about` texts."""
    out = {}
    for key, v in value.items():
        if key == 'about' or key.startswith('about_'):
            continue
        name = f'{prefix}{key}'
        if isinstance(v, dict):
            out.update(leaves(name + '.', v))
        else:
            out[name] = v
    return out


def json_scalar(cell):
    try:
        return json.loads(unquote(cell))
    except ValueError:
        return unquote(cell)


def check_semantics():
    path = 'docs/semantics.md'
    if not os.path.exists(os.path.join(ROOT, path)):
        finding(f'{path} is missing')
        return
    text = read(path)
    policy = json.loads(read('clients/retry-policy.json'))
    defaults = json.loads(read('clients/defaults.json'))

    documented = {}
    for cells in table_after(text, '<!-- table: retry-policy.json codes -->'):
        if len(cells) < 4:
            finding(f'{path}: retry table row {cells} has fewer than 4 cells')
            continue
        code = unquote(cells[0])
        documented[code] = {'number': json_scalar(cells[1]),
                            'unary': unquote(cells[2]),
                            'stream': unquote(cells[3])}
    for code, rule in policy['codes'].items():
        if code not in documented:
            finding(f'{path}: retry table lacks {code}')
        elif documented[code] != rule:
            finding(f'{path}: retry table says {code} is {documented[code]}, '
                    f'clients/retry-policy.json says {rule}')
    for code in documented.keys() - policy['codes'].keys():
        finding(f'{path}: retry table has {code}, '
                'which clients/retry-policy.json does not')

    def compare(marker, expected, source):
        got = {unquote(c[0]): json_scalar(c[1])
               for c in table_after(text, marker) if len(c) >= 2}
        for key, value in expected.items():
            if key not in got:
                finding(f'{path}: table of {source} lacks {key}')
            elif got[key] != value:
                finding(f'{path}: {key} is {got[key]!r} in the document, '
                        f'{value!r} in {source}')
        for key in got.keys() - expected.keys():
            finding(f'{path}: {key} is not in {source}')

    compare('<!-- table: retry-policy.json backoff and channel -->',
            {**leaves('backoff.', policy['backoff']),
             **leaves('channel.', policy['channel'])},
            'clients/retry-policy.json')
    compare('<!-- table: defaults.json -->', leaves('', defaults),
            'clients/defaults.json')


# ---- references to documents ----------------------------------------------

# A document named in capitals, as project documents are (README.md).
CAPITAL_DOC = re.compile(r'(?<![\w/.-])([A-Z][A-Z0-9_-]*\.md)\b')
# A relative path that climbs into a folder (../folder/file; a bare ../name
# is more often a bad name a test feeds the server): from the file's folder
# it must stay in the repository, and a document it names must exist there
# (other paths may be outputs that a run creates).
CLIMBING_PATH = re.compile(
    r'(?<![\w/.$}-])((?:\.\./)+[\w.-]+(?:/[\w.-]+)+)')


def tracked_names(files):
    return {os.path.basename(path) for path in files}


def leads_into_repository(path, relative):
    target = os.path.normpath(os.path.join(ROOT, os.path.dirname(path),
                                           relative))
    if not (target == ROOT or target.startswith(ROOT + os.sep)):
        return False
    return not target.endswith('.md') or os.path.isfile(target)


DOCS_MENTION = re.compile(r'(?<![\w.-])docs/([\w.-]+\.md)')


def check_references(files):
    names = tracked_names(files)
    for path in files:
        if path == SELF:
            continue
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for name in CAPITAL_DOC.findall(line):
                if name not in names:
                    finding(f'{path}:{number}: {name} is not in the repository')
            for relative in CLIMBING_PATH.findall(line):
                if not leads_into_repository(path, relative):
                    finding(f'{path}:{number}: {relative} leads outside the '
                            'repository or to a document it lacks')
            for name in DOCS_MENTION.findall(line):
                if not os.path.isfile(os.path.join(ROOT, 'docs', name)):
                    finding(f'{path}:{number}: docs/{name} does not exist')


# ---- links of the Markdown files ------------------------------------------

LINK = re.compile(r'(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)|'
                  r'!\[[^\]]*\]\(([^)\s]+)\)')


def slug(heading):
    """GitHub's anchor of a heading."""
    text = re.sub(r'`|\*\*|\*|_(?=\w)|(?<=\w)_', '', heading.strip())
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', text).lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(path, cache={}):
    if path not in cache:
        names = set()
        counts = {}
        fenced = False
        for line in (text_of(path) or '').splitlines():
            if line.lstrip().startswith('```'):
                fenced = not fenced
                continue
            m = None if fenced else re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
            if m:
                base = slug(m.group(1))
                n = counts.get(base, 0)
                counts[base] = n + 1
                names.add(base if n == 0 else f'{base}-{n}')
        for m in re.finditer(r'<a\s+(?:name|id)="([^"]+)"', text_of(path) or ''):
            names.add(m.group(1))
        cache[path] = names
    return cache[path]


def check_links(files):
    for path in files:
        if not path.endswith('.md'):
            continue
        fenced = False
        for number, line in enumerate(text_of(path).splitlines(), 1):
            if line.lstrip().startswith('```'):
                fenced = not fenced
                continue
            if fenced:
                continue
            line = re.sub(r'`[^`]*`', '', line)  # code spans are not links
            for m in LINK.finditer(line):
                target = m.group(1) or m.group(2)
                if re.match(r'[a-z][a-z0-9+.-]*:', target, re.I):
                    continue  # http:, https:, mailto:
                file_part, _, anchor = target.partition('#')
                if file_part:
                    resolved = os.path.normpath(
                        os.path.join(os.path.dirname(path), file_part))
                    if resolved.startswith('..'):
                        finding(f'{path}:{number}: link {target} leaves '
                                'the repository')
                        continue
                    if not os.path.exists(os.path.join(ROOT, resolved)):
                        finding(f'{path}:{number}: link {target}: '
                                f'{resolved} does not exist')
                        continue
                else:
                    resolved = path
                if anchor and resolved.endswith('.md') and \
                        anchor not in anchors(resolved):
                    finding(f'{path}:{number}: link {target}: no heading '
                            f'#{anchor} in {resolved}')


def check_settings(files):
    documented = read('docs/operations.md') if os.path.exists(
        os.path.join(ROOT, 'docs/operations.md')) else ''
    flag = re.compile(r'ABSL_FLAG\(\s*[^,]+,\s*(\w+)\s*,')
    for path in files:
        if not (path.startswith('server/daemon/') and path.endswith('.cc')):
            continue
        for name in flag.findall(text_of(path) or ''):
            if f'`{name}`' not in documented:
                finding(f'{path}: flag --{name} is not in the settings of '
                        'docs/operations.md')


def check_readme():
    lines = read('README.md').count('\n')
    if lines >= README_MAX_LINES:
        finding(f'README.md has {lines} lines; keep it under '
                f'{README_MAX_LINES} (details belong in docs/)')


def main():
    files = tracked_files()
    check_semantics()
    check_references(files)
    check_links(files)
    check_settings(files)
    check_readme()
    for f in findings:
        print(f'docs check: {f}')
    print(f'docs check: {len(files)} files, {len(findings)} findings')
    return 1 if findings else 0


if __name__ == '__main__':
    sys.exit(main())
