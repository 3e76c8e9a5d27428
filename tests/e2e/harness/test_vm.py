"""The console reader's boot wait, with a shell script in place of QEMU that prints what a
guest kernel prints: `python3 -m unittest discover -s tests/e2e -p 'test_*.py'` (as tests/run does).."""

import os
import tempfile
import textwrap
import unittest

from harness.vm import Guest, GuestError

STARTED = r"Start(ing|ed) ocimetal\.service"
STALL = "[  285.618092] rcu: rcu_preempt kthread starved for 15751 jiffies! g1569 f0x0"


class WaitBooted(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.count = os.path.join(self.dir.name, "starts")

    def guest(self, first, later):
        """A guest whose first start prints `first` and every later one `later`, then waits."""
        script = os.path.join(self.dir.name, "machine")
        with open(script, "w") as f:
            f.write(textwrap.dedent(f"""\
                #!/bin/sh
                echo x >> {self.count}
                if [ "$(wc -l < {self.count})" = 1 ]; then echo '{first}'; else echo '{later}'; fi
                exec sleep 30
                """))
        os.chmod(script, 0o755)
        guest = Guest("machine", os.path.join(self.dir.name, "console.log"), os.devnull, [])
        guest.args = [script]
        return guest

    def starts(self):
        with open(self.count) as f:
            return len(f.readlines())

    def test_a_stalled_kernel_is_started_once_more(self):
        with self.guest(STALL, "[ 20.1] systemd[1]: Starting ocimetal.service - install") as guest:
            match, _ = guest.wait_booted(STARTED, 2)
        self.assertEqual(match.group(0), "Starting ocimetal.service")
        self.assertEqual(self.starts(), 2)
        with open(os.path.join(self.dir.name, "console.log.stalled")) as f:
            self.assertIn("kthread starved", f.read())

    def test_a_second_stall_fails(self):
        with self.guest(STALL, STALL) as guest:
            with self.assertRaises(GuestError):
                guest.wait_booted(STARTED, 1)
        self.assertEqual(self.starts(), 2)

    def test_a_boot_that_only_hangs_is_not_started_again(self):
        with self.guest("[ 20.1] A start job is running for a device", STALL) as guest:
            with self.assertRaises(GuestError):
                guest.wait_booted(STARTED, 1)
        self.assertEqual(self.starts(), 1)


if __name__ == "__main__":
    unittest.main()
