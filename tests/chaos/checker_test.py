"""dynamo-chaos-check on small histories whose verdicts are known."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

CHECKER = None


def w(key, value, seen=()):
    return {"op": "write", "key": key, "value": value, "seen": list(seen)}


def ack(value):
    return {"op": "ack", "value": value}


def delete(key, seen):
    return {"op": "delete", "key": key, "seen": list(seen)}


def final(key, node, values, context="c"):
    return {"op": "final", "key": key, "node": node, "values": list(values), "context": context}


def check(records, raw_tail=""):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "h.jsonl")
        with open(path, "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
            f.write(raw_tail)
        out = os.path.join(d, "r.json")
        p = subprocess.run([CHECKER, path, "--json", out], capture_output=True, text=True)
        report = None
        if os.path.exists(out):
            with open(out) as f:
                report = json.load(f)
        return p.returncode, report, p.stdout + p.stderr


class CheckerTest(unittest.TestCase):
    def test_present_and_superseded_writes_pass(self):
        code, r, out = check([
            w("k", "a"), ack("a"),
            w("k", "b", ["a"]), ack("b"),        # b read a: a may go
            w("k", "c"), ack("c"),               # blind: a sibling of b
            w("k", "d", ["b"]),                  # not acknowledged, yet present: fine
            final("k", "n0", ["c", "d"]), final("k", "n1", ["c", "d"]),
        ])
        self.assertEqual(code, 0, out)
        self.assertEqual((r["lost"], r["acked_present"], r["acked_superseded"]), (0, 1, 2))
        self.assertTrue(r["converged"])

    def test_lost_write_fails(self):
        code, r, out = check([
            w("k", "a"), ack("a"), w("k", "b"), ack("b"),
            final("k", "n0", ["b"]), final("k", "n1", ["b"]),
        ])
        self.assertEqual(code, 1, out)
        self.assertEqual(r["lost"], 1)
        self.assertIn("'a'", " ".join(r["problems"]))

    def test_superseded_by_a_write_that_is_itself_gone_fails(self):
        code, r, out = check([
            w("k", "a"), ack("a"), w("k", "b", ["a"]), ack("b"),
            final("k", "n0", []), final("k", "n1", []),
        ])
        self.assertEqual(code, 1, out)
        self.assertEqual(r["lost"], 2)

    def test_invented_value_and_value_of_another_key_fail(self):
        code, r, out = check([
            w("k", "a"), ack("a"), w("j", "x"),
            final("k", "n0", ["a", "zzz"]), final("k", "n1", ["a", "zzz"]),
            final("j", "n0", ["x"]), final("j", "n1", ["x"]),
            final("q", "n0", ["a"]), final("q", "n1", ["a"]),
        ])
        self.assertEqual(code, 1, out)
        self.assertEqual(r["invented"], 2)  # zzz under k, and a (written to k) under q

    def test_diverged_replicas_fail_but_count_as_present(self):
        code, r, out = check([
            w("k", "a"), ack("a"), w("k", "b"), ack("b"),
            final("k", "n0", ["a", "b"]), final("k", "n1", ["b"]),
        ])
        self.assertEqual(code, 1, out)
        self.assertEqual(r["lost"], 0)
        self.assertFalse(r["converged"])
        self.assertEqual(r["diverged_values"], 1)

    def test_contexts_that_differ_mean_not_converged(self):
        code, r, out = check([w("k", "a"), ack("a"), final("k", "n0", ["a"], "x"),
                              final("k", "n1", ["a"], "y")])
        self.assertEqual(code, 1, out)
        self.assertEqual(r["diverged_contexts"], 1)

    def test_a_delete_may_remove_what_it_read_and_nothing_else(self):
        # The delete read a and b: both may be gone, acknowledged or not.
        code, r, out = check([
            w("k", "a"), ack("a"), w("k", "b"), ack("b"), delete("k", ["a", "b"]),
            final("k", "n0", []), final("k", "n1", []),
        ])
        self.assertEqual(code, 0, out)
        self.assertEqual(r["lost"], 0)
        # c was written after the read the delete was based on: it must stay.
        code, r, out = check([
            w("k", "a"), ack("a"), delete("k", ["a"]), w("k", "c"), ack("c"),
            final("k", "n0", []), final("k", "n1", []),
        ])
        self.assertEqual(code, 1, out)
        self.assertEqual(r["lost"], 1)
        self.assertIn("'c'", " ".join(r["problems"]))

    def test_key_never_read_back_fails(self):
        code, r, out = check([w("k", "a"), ack("a"), w("j", "b"), final("k", "n0", ["a"])])
        self.assertEqual(code, 1, out)
        self.assertEqual(r["unread_keys"], 1)

    def test_torn_last_line_is_ignored_and_garbage_is_refused(self):
        code, _, out = check([w("k", "a"), ack("a"), final("k", "n0", ["a"])], '{"op":"wri')
        self.assertEqual(code, 0, out)
        code, _, out = check([w("k", "a"), {"op": "bogus"}, final("k", "n0", ["a"])])
        self.assertEqual(code, 2, out)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--checker", required=True)
    args, rest = p.parse_known_args()
    CHECKER = args.checker
    unittest.main(argv=[sys.argv[0]] + rest)
