#!/usr/bin/env python3
"""Every design document a comment cites must be in the repository.

Scans the comments of C sources and headers (/* ... */), and the # comments of shell, CMake and
Python files, for names ending in .md. A citation passes when it is
  - a path that exists relative to the repository root (docs/internals/platforms.md),
  - part of a URL (https://github.com/opencontainers/image-spec/blob/main/layer.md), or
  - a file of a named external specification: the comment names the spec before the file
    ("image-spec layer.md", "runtime-spec config.md", "distribution-spec spec.md").
Markdown pages under docs/ and the README are checked too: every relative link must resolve.
Exit status 1 lists each bad citation as FILE:LINE: NAME.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTERNAL = ("image-spec", "runtime-spec", "distribution-spec", "distribution", "compose-spec",
            "grpc", "containerd", "moby", "buildkit", "kubernetes", "lima", "colima", "kernel")
MD = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b")
URL = re.compile(r"https?://\S+")


def files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode == 0 and out.stdout:
        return out.stdout.split()
    found = []
    for d, _, fs in os.walk(ROOT):
        if "/.git" in d or "/build" in d:
            continue
        found += [os.path.relpath(os.path.join(d, f), ROOT) for f in fs]
    return found


def c_comments(text):
    """Yields (line, comment text) for each /* */ comment, skipping string literals."""
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\\":
                    j += 1
                if j < n and text[j] == "\n":
                    line += 1
                j += 1
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j
            yield line, text[i:j]
            line += text.count("\n", i, j)
            i = j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            yield line, text[i:j]
            i = j
        else:
            i += 1


def hash_comments(text):
    for k, l in enumerate(text.split("\n"), 1):
        m = re.search(r"(^|\s)#(?![!{(])(.*)$", l)
        if m:
            yield k, m.group(2)


def bad_citations(comment):
    urls = [(m.start(), m.end()) for m in URL.finditer(comment)]
    for m in MD.finditer(comment):
        name = m.group(0)
        if any(a <= m.start() < b for a, b in urls):
            continue
        if "/" in name and os.path.isfile(os.path.join(ROOT, name.lstrip("./"))):
            continue
        before = comment[: m.start()].lower()
        if any(re.search(r"\b" + re.escape(e) + r"\b", before) for e in EXTERNAL):
            continue
        yield comment.count("\n", 0, m.start()), name


def main():
    bad = []
    for f in files():
        path = os.path.join(ROOT, f)
        if not os.path.isfile(path):
            continue
        if f.endswith((".c", ".h")):
            comments = c_comments(open(path, encoding="utf-8", errors="replace").read())
        elif f.endswith((".sh", ".py", ".cmake")) or os.path.basename(f) in ("CMakeLists.txt", "run"):
            comments = hash_comments(open(path, encoding="utf-8", errors="replace").read())
        elif f.endswith(".md") and (f.startswith("docs/") or f == "README.md"):
            text = open(path, encoding="utf-8").read()
            fenced = False
            for k, l in enumerate(text.split("\n"), 1):
                if l.lstrip().startswith("```"):
                    fenced = not fenced
                if fenced:
                    continue
                for m in re.finditer(r"\]\(([^)#\s]+)(#[^)]*)?\)", l):
                    target = m.group(1)
                    if re.match(r"[a-z]+:", target):
                        continue
                    if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                        bad.append(f"{f}:{k}: {target}")
                # Names in running text resolve from the page's folder, docs/ or the root.
                prose = re.sub(r"\[[^]]*\]\([a-z]+:[^)]*\)", "", l)
                prose = re.sub(r"\]\([^)]*\)", "]", prose)
                for off, name in bad_citations(URL.sub("", prose)):
                    here = [os.path.dirname(path), os.path.join(ROOT, "docs"), ROOT]
                    if not any(os.path.isfile(os.path.join(d, name)) for d in here):
                        bad.append(f"{f}:{k}: {name}")
            continue
        else:
            continue
        for line, text in comments:
            for off, name in bad_citations(text):
                bad.append(f"{f}:{line + off}: {name}")
    for b in bad:
        print(f"check-doc-refs: {b}: not in the repository", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
