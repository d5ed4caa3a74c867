"""Writes records in Confluent wire format with confluent-kafka's own serializers, and what its deserializers
give back for each, as the JSON the sidecar promises for it.

Usage: serialize.py REGISTRY_URL OUT_FILE

The schemas are registered by the serializers (auto-registration, subjects by topic name). OUT_FILE gets one
JSON object per line: {"format", "topic", "key", "value", "expected", "expected_key"}, key and value base64.
Values that JSON has no type for are written the way the sidecar writes them:
  decimal                    the exact number as a string, every digit of the scale ("12.30")
  timestamp-millis/-micros   RFC 3339 in UTC with a Z, fraction without trailing zeros ("2024-05-06T07:08:09.12Z")
  local-timestamp-*          the same without the Z
  date / time-*              "2024-05-06" / "07:08:09.5"
  uuid                       the canonical string
  bytes, fixed               base64
"""
import base64
import datetime
import decimal
import importlib
import json
import os
import subprocess
import sys
import tempfile
import uuid

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
UTC = datetime.timezone.utc


def fraction(s):
    """Drops trailing zeros of a fractional part, and the dot when nothing is left."""
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def to_json(v):
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            return fraction(v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")) + "Z"
        return fraction(v.strftime("%Y-%m-%dT%H:%M:%S.%f"))
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, datetime.time):
        return fraction(v.strftime("%H:%M:%S.%f"))
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return base64.standard_b64encode(v).decode("ascii")
    return v


def b64(b):
    return base64.standard_b64encode(b).decode("ascii") if b is not None else None


def avro_records(client):
    topic = "avro-orders"
    with open(os.path.join(HERE, "order.avsc")) as f:
        schema = f.read()
    ser = AvroSerializer(client, schema)
    de = AvroDeserializer(client)
    key_ser = AvroSerializer(client, '{"type": "string"}')
    key_de = AvroDeserializer(client)
    values = [
        {
            "id": "o-1", "amount": decimal.Decimal("12345.67"), "rate": decimal.Decimal("-0.0125"),
            "placed_at": datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
            "seen_at": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
            "local_at": datetime.datetime(2024, 5, 6, 7, 8, 9, 500000),
            "local_micros": datetime.datetime(1969, 12, 31, 23, 59, 59, 999999),
            "day": datetime.date(2024, 2, 29), "opens": datetime.time(8, 30, 0, 250000),
            "closes": datetime.time(17, 45, 30, 123456),
            "ref": uuid.UUID("6f1c2a4e-8b3d-4c5e-9f70-1a2b3c4d5e6f"), "status": "PAID",
            "note": "first \"order\" \u00e9\u4e2d\U0001F600\n", "discount": 250,
            "customer": {"name": "Ada", "vip": True, "score": 0.1},
            "referrer": {"name": "Grace", "vip": False, "score": -2.5},
            "tags": ["a", "b"], "attributes": {"x": 1, "y": -2},
            "checksum": b"\x00\xff\x10\x80", "payload": b"\x01\x02hello", "weight": 1e-7, "count": 9007199254740993,
        },
        {
            "id": "o-2", "amount": decimal.Decimal("0.00"), "rate": decimal.Decimal("1.0000"),
            "placed_at": datetime.datetime(1970, 1, 1, 0, 0, 0, tzinfo=UTC),
            "seen_at": datetime.datetime(1999, 12, 31, 23, 59, 59, 10, tzinfo=UTC),
            "local_at": datetime.datetime(2000, 1, 1), "local_micros": datetime.datetime(2000, 1, 1, 0, 0, 0, 1),
            "day": datetime.date(1969, 7, 20), "opens": datetime.time(0, 0), "closes": datetime.time(23, 59, 59, 999999),
            "ref": uuid.UUID("00000000-0000-0000-0000-000000000000"), "status": "NEW",
            "note": None, "discount": 0.75,
            "customer": {"name": "", "vip": False, "score": 3.0},
            "referrer": None, "tags": [], "attributes": {},
            "checksum": b"\x00\x00\x00\x00", "payload": b"", "weight": -123456.789, "count": -1,
        },
    ]
    out = []
    for i, v in enumerate(values):
        vctx = SerializationContext(topic, MessageField.VALUE)
        kctx = SerializationContext(topic, MessageField.KEY)
        value = ser(v, vctx)
        key = key_ser("order-%d" % i, kctx)
        out.append({"format": "avro", "topic": topic, "key": b64(key), "value": b64(value),
                    "expected": to_json(de(value, vctx)), "expected_key": to_json(key_de(key, kctx))})
    return out


def protobuf_records(client, gen_dir):
    proto_dir = os.path.join(HERE, "proto")
    import grpc_tools
    from grpc_tools import protoc
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["protoc", "-I" + proto_dir, "-I" + include, "--python_out=" + gen_dir,
                      "shop/money.proto", "shop/order.proto"])
    if rc != 0:
        raise SystemExit("protoc failed")
    sys.path.insert(0, gen_dir)
    order_pb2 = importlib.import_module("shop.order_pb2")
    money_pb2 = importlib.import_module("shop.money_pb2")
    topic = "proto-orders"
    conf = {"use.deprecated.format": False}
    ser = ProtobufSerializer(order_pb2.Order, client, conf)
    de = ProtobufDeserializer(order_pb2.Order, {"use.deprecated.format": False})

    o1 = order_pb2.Order(id="p-1", status=order_pb2.Order.STATUS_PAID,
                         total=money_pb2.Money(currency="EUR", units=12, nanos=500000000),
                         note={"value": "leave at the door"}, labels={"channel": "web", "region": "eu"},
                         signature=b"\x00\x01\xfe", weight=2.25, ratio=0.1, balance=-9007199254740993, gift=True,
                         email="a@example.com")
    o1.placed_at.FromDatetime(datetime.datetime(2024, 5, 6, 7, 8, 9, 123000))
    o1.lines.add(sku="sku-1", quantity=2, price=money_pb2.Money(currency="EUR", units=5))
    o1.lines.add(sku="sku-\u00e9", quantity=1)
    o2 = order_pb2.Order(id="p-2", customer=order_pb2.Customer(name="Ada"))
    out = []
    for m in (o1, o2):
        ctx = SerializationContext(topic, MessageField.VALUE)
        value = ser(m, ctx)
        out.append({"format": "protobuf", "topic": topic, "key": None, "value": b64(value),
                    "expected": json.loads(json_format.MessageToJson(de(value, ctx))), "expected_key": None})
    return out


def json_records(client):
    topic = "json-orders"
    with open(os.path.join(HERE, "order.schema.json")) as f:
        schema = f.read()
    ser = JSONSerializer(schema, client)
    de = JSONDeserializer(schema)
    values = [
        {"id": "j-1", "amount": 12.5, "lines": [{"sku": "a", "qty": 2}], "note": "caf\u00e9"},
        {"id": "j-2", "amount": -1, "lines": [], "note": None},
    ]
    out = []
    for v in values:
        ctx = SerializationContext(topic, MessageField.VALUE)
        value = ser(v, ctx)
        out.append({"format": "json", "topic": topic, "key": None, "value": b64(value),
                    "expected": to_json(de(value, ctx)), "expected_key": None})
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    client = SchemaRegistryClient({"url": sys.argv[1]})
    records = avro_records(client)
    with tempfile.TemporaryDirectory() as gen_dir:
        records += protobuf_records(client, gen_dir)
    records += json_records(client)
    with open(sys.argv[2], "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
