"""Interop check of the embedded broker with Eclipse Paho Python (python3-paho-mqtt 1.6).

Usage: paho_interop.py HOST PORT VERSION(4|5) QOS [CAFILE CERT KEY]
Prints one JSON object: what arrived. Exits 1 on a timeout.
"""
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt

host, port, version, qos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tls = sys.argv[5:8] if len(sys.argv) >= 8 else None
proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
tag = "py-%d-%d-%s" % (version, qos, "tls" if tls else "tcp")


def client(cid, clean=True):
    if proto == mqtt.MQTTv5:
        c = mqtt.Client(client_id=cid, protocol=proto)
    else:
        c = mqtt.Client(client_id=cid, protocol=proto, clean_session=clean)
    if tls:
        c.tls_set(ca_certs=tls[0], certfile=tls[1], keyfile=tls[2], tls_version=ssl.PROTOCOL_TLS_CLIENT)
    return c


def connect(c, clean=True):
    ok = threading.Event()
    c.on_connect = lambda *a, **k: ok.set()
    if proto == mqtt.MQTTv5:
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = 0 if clean else 3600
        c.connect(host, port, keepalive=30, clean_start=clean, properties=p)
    else:
        c.connect(host, port, keepalive=30)
    c.loop_start()
    if not ok.wait(10):
        print(json.dumps({"error": "no CONNACK"}))
        sys.exit(1)


got = []
lock = threading.Lock()


def on_message(c, u, m):
    with lock:
        got.append({"topic": m.topic, "payload": m.payload.decode(), "qos": m.qos, "retain": bool(m.retain)})


# Retained message and a stream, to a subscriber that subscribes after the retained one.
pub = client(tag + "-pub")
connect(pub)
pub.publish(tag + "/r", "retained", qos=qos, retain=True).wait_for_publish(10)
# At QoS 0 wait_for_publish returns once the packet is written; a QoS 1 fence on the same
# connection makes sure the broker stored the retained message before the subscriber subscribes.
pub.publish("fence/" + tag, "", qos=1).wait_for_publish(10)
sub = client(tag + "-sub")
sub.on_message = on_message
connect(sub)
subscribed = threading.Event()
sub.on_subscribe = lambda *a, **k: subscribed.set()
sub.subscribe(tag + "/#", qos=qos)
subscribed.wait(10)
n = 20
for i in range(n):
    pub.publish(tag + "/m", str(i), qos=qos).wait_for_publish(10)
deadline = time.time() + 10
while time.time() < deadline:
    with lock:
        if len(got) >= n + 1:
            break
    time.sleep(0.01)
sub.loop_stop()
sub.disconnect()

# A persistent session receives what was published while it was away.
stored = []
ps = client(tag + "-persist", clean=False)
connect(ps, clean=False)
s2 = threading.Event()
ps.on_subscribe = lambda *a, **k: s2.set()
ps.subscribe(tag + "/p", qos=1)
s2.wait(10)
ps.disconnect()
ps.loop_stop()
time.sleep(0.2)
for i in range(3):
    pub.publish(tag + "/p", "p%d" % i, qos=1).wait_for_publish(10)
time.sleep(0.2)
ps = client(tag + "-persist", clean=False)
ps.on_message = lambda c, u, m: stored.append(m.payload.decode())
connect(ps, clean=False)
deadline = time.time() + 10
while time.time() < deadline and len(stored) < 3:
    time.sleep(0.01)
ps.disconnect()
pub.disconnect()
print(json.dumps({"got": got, "stored": stored}))
