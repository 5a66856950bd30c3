#!/usr/bin/env python3
"""Print a one-line apt sources list for a private apt state directory.

The mirror is taken from the machine's own apt sources (never written into
the repository). Usage: apt-sources.py [--own] [SUITE ...]
  --own   include the machine's own entries (its release, updates, security)
  SUITE   an extra suite served by the machine's main mirror (e.g. bookworm-backports)
"""
import glob
import sys


def parse_one_line(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        words = line.split()[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words.pop(0)
            words.pop(0)
        if len(words) >= 3:
            yield words[0], [words[1]], words[2:]


def parse_deb822(path):
    stanza = {}
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n") + [""]
    for line in lines:
        if line.startswith("#"):
            continue
        if not line.strip():
            if "deb" in stanza.get("types", "").split() and stanza.get("enabled", "yes") != "no":
                for uri in stanza.get("uris", "").split():
                    yield uri, stanza.get("suites", "").split(), stanza.get("components", "main").split()
            stanza = {}
            continue
        if ":" in line and not line[0].isspace():
            key, value = line.split(":", 1)
            stanza[key.strip().lower()] = value.strip()


def entries():
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            yield from parse_one_line(path)
        except FileNotFoundError:
            pass
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        yield from parse_deb822(path)


def codename():
    for line in open("/etc/os-release"):
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    sys.exit("apt-sources: no VERSION_CODENAME in /etc/os-release")


def main(argv):
    own = "--own" in argv
    extra = [a for a in argv if a != "--own"]
    release = codename()
    mine = [(uri, suites, comps) for uri, suites, comps in entries()
            if any(s == release or s.startswith(release + "-") for s in suites)]
    main_mirror = next((uri for uri, suites, _ in mine if release in suites), None)
    if main_mirror is None:
        sys.exit(f"apt-sources: no apt source names the {release} suite")
    out = []
    if own:
        for uri, suites, comps in mine:
            for s in suites:
                out.append(f"deb {uri} {s} {' '.join(comps)}")
    for s in extra:
        out.append(f"deb {main_mirror} {s} main")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
