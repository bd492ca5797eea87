#!/usr/bin/env python3
"""Function and file lengths of the Rust sources under a directory (default: src).

Prints the N longest functions (lines from the `fn` line to its closing brace, doc comments
and attributes excluded), the N longest files, the median function length and the share of
functions over 70 lines (TigerStyle's cap). Usage: scripts/fn-lengths.py [DIR] [N]
`#[cfg(test)]` modules are left out: they are tests, not the core.
"""
import os
import re
import statistics
import sys


def code_only(src):
    """Blanks comments, strings and char literals (keeps newlines and braces in code)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        nx = src[i + 1] if i + 1 < n else ''
        if c == '/' and nx == '/':
            while i < n and src[i] != '\n':
                out.append(' ')
                i += 1
        elif c == '/' and nx == '*':
            depth = 0
            while i < n:
                if src.startswith('/*', i):
                    depth += 1
                    out.append('  ')
                    i += 2
                elif src.startswith('*/', i):
                    depth -= 1
                    out.append('  ')
                    i += 2
                    if depth == 0:
                        break
                else:
                    out.append('\n' if src[i] == '\n' else ' ')
                    i += 1
        elif c == 'r' and nx in '"#' and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == '_')):
            j = i + 1
            hashes = 0
            while j < n and src[j] == '#':
                hashes += 1
                j += 1
            if j >= n or src[j] != '"':
                out.append(c)
                i += 1
                continue
            end = src.find('"' + '#' * hashes, j + 1)
            end = n if end < 0 else end + 1 + hashes
            out.extend('\n' if ch == '\n' else ' ' for ch in src[i:end])
            i = end
        elif c == '"':
            out.append(' ')
            i += 1
            while i < n and src[i] != '"':
                step = 2 if src[i] == '\\' else 1
                out.extend('\n' if ch == '\n' else ' ' for ch in src[i:i + step])
                i += step
            out.append(' ')
            i += 1
        elif c == "'" and (nx == '\\' or (i + 2 < n and src[i + 2] == "'")):
            out.append(' ')
            i += 1
            while i < n and src[i] != "'":
                step = 2 if src[i] == '\\' else 1
                out.extend(' ' * step)
                i += step
            out.append(' ')
            i += 1
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def strip_test_modules(code):
    """Blanks `#[cfg(test)] mod x { ... }` blocks."""
    for m in list(re.finditer(r'#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{', code)):
        start = m.end() - 1
        depth, i = 0, start
        while i < len(code):
            if code[i] == '{':
                depth += 1
            elif code[i] == '}':
                depth -= 1
                if depth == 0:
                    break
            i += 1
        code = code[:m.start()] + ''.join('\n' if ch == '\n' else ' ' for ch in code[m.start():i + 1]) + code[i + 1:]
    return code


def functions(path):
    src = open(path, encoding='utf-8').read()
    code = strip_test_modules(code_only(src))
    out = []
    for m in re.finditer(r'\bfn\s+(\w+)', code):
        # The body starts at the first `{` after the signature (a `;` first: no body).
        i = m.end()
        paren = 0
        while i < len(code):
            ch = code[i]
            if ch in '(<[':
                paren += 1
            elif ch in ')>]':
                paren -= 1
            elif ch == ';' and paren <= 0:
                i = -1
                break
            elif ch == '{' and paren <= 0:
                break
            i += 1
        if i < 0 or i >= len(code):
            continue
        depth, j = 0, i
        while j < len(code):
            if code[j] == '{':
                depth += 1
            elif code[j] == '}':
                depth -= 1
                if depth == 0:
                    break
            j += 1
        first = code.count('\n', 0, m.start()) + 1
        last = code.count('\n', 0, j) + 1
        out.append((last - first + 1, m.group(1), path, first))
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else 'src'
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    fns, files = [], []
    for d, _, names in os.walk(root):
        for name in names:
            if name.endswith('.rs'):
                p = os.path.join(d, name)
                fns.extend(functions(p))
                files.append((sum(1 for _ in open(p, encoding='utf-8')), p))
    fns.sort(reverse=True)
    files.sort(reverse=True)
    print(f'{len(fns)} functions; median {statistics.median(l for l, *_ in fns)} lines; '
          f'{sum(1 for l, *_ in fns if l > 70)} over 70 lines '
          f'({100 * sum(1 for l, *_ in fns if l > 70) / len(fns):.1f}%)')
    print(f'longest {top} functions:')
    for l, name, p, line in fns[:top]:
        print(f'  {l:5}  {name}  {p}:{line}')
    print(f'longest {top} files (lines, tests included):')
    for l, p in files[:top]:
        print(f'  {l:5}  {p}')


if __name__ == '__main__':
    main()
