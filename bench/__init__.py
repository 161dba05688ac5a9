"""Mailslot benchmark suite: Mailslot side by side with Mosquitto and NATS JetStream.

Run ``python -m bench --help`` from the repository root.
"""
