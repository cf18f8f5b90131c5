#!/usr/bin/python3
"""A live table of a fleet's results: subscribes to the topic nymetapublish
publishes to (by default every source: nystream/+/results) and prints, per
source and detector, the last label, its confidence, how many results came and
how many were lost (gaps in each publisher's "seq"; duplicates, which QoS 1 can
deliver after a reconnect, are counted once).

    examples/fleet_table.py                                   # localhost:1883
    examples/fleet_table.py --address broker:1883 --topic 'nystream/+/results'
    examples/fleet_table.py --cafile ca.pem --username u --password p
    examples/fleet_table.py --count 1000 --once               # exit after 1000 results

Uses paho-mqtt 1.6 (Debian: python3-paho-mqtt). A fixed --client-id with
--persistent keeps the subscription on the broker while this script is away
(QoS 1 results queued for it), like the publishers' sessions.
"""
import argparse
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt


class Fleet:
    """Per (source, detector): last result and counts; per publisher: seq gaps."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows = {}        # (source, detector) -> dict
        self.seen = {}        # publisher -> set of seq (for duplicates)
        self.highest = {}     # publisher -> highest seq
        self.total = 0
        self.duplicates = 0
        self.bad = 0

    def add(self, payload):
        try:
            r = json.loads(payload)
            publisher, seq = r["publisher"], int(r["seq"])
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return
        with self.lock:
            seen = self.seen.setdefault(publisher, set())
            if seq in seen:
                self.duplicates += 1
                return
            seen.add(seq)
            self.total += 1
            self.highest[publisher] = max(self.highest.get(publisher, -1), seq)
            row = self.rows.setdefault((r.get("source", ""), r.get("detector", "")),
                                       {"publisher": publisher, "results": 0})
            row.update(publisher=publisher, label=r.get("label", ""),
                       confidence=r.get("confidence", 0.0), model=r.get("model", ""),
                       timestamp=r.get("start_timestamp", 0))
            row["results"] += 1

    def lost(self, publisher):
        # seq starts at 0 when the publisher starts: missing numbers below the
        # highest one seen were dropped (queue full) or never arrived.
        return self.highest.get(publisher, -1) + 1 - len(self.seen.get(publisher, ()))

    def table(self):
        with self.lock:
            lines = [f"{'source':<20} {'detector':<12} {'last label':<16} {'conf':>5} "
                     f"{'at s':>9} {'results':>8} {'lost':>6}"]
            for (source, detector), row in sorted(self.rows.items()):
                lines.append(f"{source[:20]:<20} {detector[:12]:<12} {row['label'][:16]:<16} "
                             f"{row['confidence']:5.2f} {row['timestamp'] / 1e9:9.2f} "
                             f"{row['results']:8d} {self.lost(row['publisher']):6d}")
            lines.append(f"{self.total} results, {self.duplicates} duplicates, "
                         f"{self.bad} unreadable, {len(self.seen)} publishers")
            return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="localhost:1883", help="broker host:port")
    parser.add_argument("--topic", default="nystream/+/results")
    parser.add_argument("--client-id", default="")
    parser.add_argument("--persistent", action="store_true",
                        help="clean_session=false (needs --client-id)")
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--cafile", help="enables TLS")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between tables")
    parser.add_argument("--count", type=int, default=0, help="exit after this many results")
    parser.add_argument("--timeout", type=float, default=0, help="exit after this many seconds")
    parser.add_argument("--once", action="store_true", help="print only the last table")
    args = parser.parse_args()

    host, _, port = args.address.rpartition(":")
    if not host:
        host, port = args.address, "1883"
    fleet = Fleet()
    client = mqtt.Client(client_id=args.client_id,
                         clean_session=not (args.persistent and args.client_id))
    if args.username:
        client.username_pw_set(args.username, args.password)
    if args.cafile:
        client.tls_set(ca_certs=args.cafile)

    def on_connect(c, userdata, flags, rc):
        if rc != 0:
            print(f"broker refused: {mqtt.connack_string(rc)}", file=sys.stderr)
            return
        c.subscribe(args.topic, qos=1)   # again after every reconnect

    client.on_connect = on_connect
    client.on_subscribe = lambda c, userdata, mid, qos: print(
        f"subscribed to {args.topic}", file=sys.stderr, flush=True)
    client.on_message = lambda c, userdata, msg: fleet.add(msg.payload)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.connect_async(host, int(port), keepalive=30)
    client.loop_start()
    start = time.monotonic()
    try:
        while True:
            time.sleep(args.interval if not args.count else 0.05)
            done = (args.count and fleet.total >= args.count) or \
                (args.timeout and time.monotonic() - start > args.timeout)
            if done or (not args.once and not args.count):
                if not args.once:
                    print("\033[2J\033[H" if sys.stdout.isatty() else "", end="")
                print(fleet.table(), flush=True)
            if done:
                break
    except KeyboardInterrupt:
        pass
    client.loop_stop()
    client.disconnect()
    return 0 if not args.count or fleet.total >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
