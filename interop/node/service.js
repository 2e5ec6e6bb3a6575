// A Node.js "shop" service that talks to a Hexeract Go service over RabbitMQ
// or Kafka with the official CloudEvents SDK (npm "cloudevents").
//
//   - It consumes users.registered events a Hexeract service publishes and
//     checks each one as a CloudEvent (SDK validation plus id, type, source,
//     specversion, time, datacontenttype and data).
//   - It publishes an orders.placed CloudEvent carrying the extension
//     correlationid; the Hexeract handler replies with orders.accepted, which
//     must come back in the same conversation (correlation_id) and name the
//     order event as its cause (causation_id).
//   - With sendBad it first publishes an orders.placed event without a type,
//     which Hexeract must move to its dead-letter topic.
//   - With mode "structured" every event goes both ways in CloudEvents
//     structured content mode (the whole event as an
//     application/cloudevents+json body: the SDK's Kafka.structured, and
//     HTTP.structured on RabbitMQ), and the program checks that what it
//     reads from Hexeract is structured too; with "binary" (the default),
//     binary content mode.
//
// Configuration is one JSON object in the environment variable
// INTEROP_CONFIG (see DEFAULTS below). The program writes one JSON object per
// line on stdout ({"step": ...}), exits 0 when every check passed and 1 with
// {"step":"fail","error":...} otherwise. interop/interop_test.go runs it.
"use strict";

const assert = require("node:assert/strict");
const { CloudEvent, Kafka: KafkaBinding, ValidationError } = require("cloudevents");
const amqplib = require("amqplib");
const { Kafka: KafkaClient, logLevel } = require("kafkajs");
const { toAMQP, toAMQPStructured, fromAMQP, encodeData, PREFIX } = require("./amqp-binding");

const DEFAULTS = {
  transport: "amqp", // "amqp" (RabbitMQ) or "kafka"
  amqpURL: "amqp://guest:guest@127.0.0.1:5672/",
  brokers: ["127.0.0.1:9092"],
  group: "node-shop", // Kafka consumer group
  source: "/node-shop", // our CloudEvents source
  topics: { registered: "users.registered", placed: "orders.placed", accepted: "orders.accepted" },
  // What the Hexeract service publishes on topics.registered.
  expect: { source: "/users", correlation: "", data: null },
  // The order we place.
  order: { id: "o-1", amountCents: 4200, correlation: "conv-node-1" },
  sendBad: false,
  mode: "binary", // "binary" or "structured" content mode, both directions
  timeoutMs: 60000,
};

function config() {
  const given = process.env.INTEROP_CONFIG ? JSON.parse(process.env.INTEROP_CONFIG) : {};
  return { ...DEFAULTS, ...given, topics: { ...DEFAULTS.topics, ...given.topics } };
}

function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

function fail(err) {
  const detail = err instanceof ValidationError ? ` ${JSON.stringify(err.errors)}` : "";
  report("fail", { error: String(err && err.message ? err.message : err) + detail });
  process.exit(1);
}

// checkRegistered checks a users.registered event from the Hexeract service.
function checkRegistered(cfg, event, headers) {
  event.validate(); // the SDK's own CloudEvents 1.0 validation; throws ValidationError
  assert.equal(event.specversion, "1.0", "specversion");
  assert.equal(event.type, "users.registered", "type");
  assert.equal(event.source, cfg.expect.source, "source");
  assert.ok(event.id, "id is empty");
  const at = Date.parse(event.time);
  assert.ok(!Number.isNaN(at), `time ${event.time} does not parse`);
  assert.ok(Math.abs(Date.now() - at) < 10 * 60 * 1000, `time ${event.time} is not around now`);
  assert.equal(event.datacontenttype, "application/json", "datacontenttype");
  assert.deepEqual(event.data, cfg.expect.data, "data");
  if (cfg.expect.correlation) {
    assert.equal(headers.correlation_id, cfg.expect.correlation, "correlation_id header");
    if (cfg.mode === "structured") {
      // In structured mode the conversation is an attribute of the event too.
      assert.equal(event.correlationid, cfg.expect.correlation, "correlationid extension");
    }
  }
}

// checkAccepted checks the orders.accepted reply to the order event placed.
function checkAccepted(cfg, placed, event, headers) {
  event.validate();
  assert.equal(event.type, "orders.accepted", "reply type");
  assert.equal(event.source, cfg.expect.source, "reply source");
  assert.equal(event.datacontenttype, "application/json", "reply datacontenttype");
  assert.deepEqual(event.data, { order_id: cfg.order.id }, "reply data");
  assert.equal(headers.correlation_id, cfg.order.correlation, "reply correlation_id (the conversation of the order)");
  assert.equal(headers.causation_id, placed.id, "reply causation_id (the id of the order event)");
  if (cfg.mode === "structured") {
    assert.equal(event.correlationid, cfg.order.correlation, "reply correlationid extension");
    assert.equal(event.causationid, placed.id, "reply causationid extension");
  }
}

// checkMode checks that an event from Hexeract came in the configured
// content mode: structured, the event format's media type and no attribute
// headers; binary, the attributes as headers.
function checkMode(cfg, contentType, headerNames) {
  const attrHeaders = headerNames.filter((k) => /^(ce_|cloudEvents[_:])(id|type|source|specversion)$/.test(k));
  if (cfg.mode === "structured") {
    assert.ok(String(contentType).startsWith("application/cloudevents+json"), `content type ${contentType}, want application/cloudevents+json`);
    assert.deepEqual(attrHeaders, [], "attribute headers in structured mode");
  } else {
    assert.equal(attrHeaders.length, 4, `attribute headers in binary mode: ${headerNames.join(", ")}`);
  }
}

// orderPlaced is the good event; badOrder lacks the required type attribute.
function orderPlaced(cfg) {
  return new CloudEvent({
    type: "orders.placed",
    source: cfg.source,
    datacontenttype: "application/json",
    data: { order_id: cfg.order.id, amount_cents: cfg.order.amountCents },
    correlationid: cfg.order.correlation, // extension; Hexeract reads it as correlation_id
  });
}

function badOrder(cfg) {
  // strict=false: the SDK builds it without validating, and must refuse it on validate().
  const bad = new CloudEvent(
    { source: cfg.source, datacontenttype: "application/json", data: { order_id: "bad", amount_cents: 1 } },
    false,
  );
  assert.throws(() => bad.validate(), ValidationError, "the SDK accepted an event without type");
  return bad;
}

// checkAMQPWire checks that a RabbitMQ delivery follows the CloudEvents AMQP
// binding: attributes under the cloudEvents_ prefix, none under the Kafka
// binding's ce_, and the data content type in the content-type property.
function checkAMQPWire(cfg, msg) {
  const names = Object.keys(msg.properties.headers || {});
  const kafkaStyle = names.filter((k) => k.startsWith("ce_") || k === "content-type");
  assert.deepEqual(kafkaStyle, [], `headers not in the AMQP binding's form (all headers: ${names.join(", ")})`);
  checkMode(cfg, msg.properties.contentType, names);
  if (cfg.mode === "structured") return;
  for (const attr of ["id", "type", "source", "specversion", "time"]) {
    assert.ok(names.includes(PREFIX + attr), `no ${PREFIX}${attr} header (all headers: ${names.join(", ")})`);
  }
  assert.equal(msg.properties.contentType, "application/json", "AMQP content-type property");
}

// AMQP (RabbitMQ): Hexeract declares one durable fanout exchange per topic;
// we bind an exclusive queue of our own to each topic we consume.
async function amqpTransport(cfg) {
  const conn = await amqplib.connect(cfg.amqpURL);
  const ch = await conn.createConfirmChannel();
  const exchange = (topic) => ch.assertExchange(topic, "fanout", { durable: true });
  return {
    async subscribe(topic, onEvent) {
      await exchange(topic);
      const { queue } = await ch.assertQueue("", { exclusive: true, autoDelete: true });
      await ch.bindQueue(queue, topic, "");
      await ch.consume(queue, (msg) => {
        try {
          checkAMQPWire(cfg, msg);
          const { event, headers } = fromAMQP(msg);
          onEvent(event, headers);
          ch.ack(msg); // after handling: a crash before this leaves the message for redelivery
        } catch (err) {
          fail(err);
        }
      });
    },
    async publish(topic, event) {
      await exchange(topic);
      const { body, options } = cfg.mode === "structured" ? toAMQPStructured(event) : toAMQP(event);
      ch.publish(topic, "", body, options);
      await ch.waitForConfirms();
    },
    async close() {
      await ch.close();
      await conn.close();
    },
  };
}

// Kafka: exactly the SDK's Kafka binding; binary mode: ce_ headers and a
// content-type header; structured mode: the event as the record value.
async function kafkaTransport(cfg) {
  const kafka = new KafkaClient({ clientId: "node-shop", brokers: cfg.brokers, logLevel: logLevel.ERROR });
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  const consumer = kafka.consumer({ groupId: cfg.group });
  await producer.connect();
  await consumer.connect();
  const handlers = new Map();
  return {
    async subscribe(topic, onEvent) {
      handlers.set(topic, onEvent);
    },
    async start() {
      await consumer.subscribe({ topics: [...handlers.keys()], fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ topic, message }) => {
          try {
            const headers = {};
            for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v === undefined ? "" : v.toString();
            checkMode(cfg, headers["content-type"], Object.keys(headers));
            const event = KafkaBinding.toEvent({ headers, value: message.value, key: message.key && message.key.toString() });
            handlers.get(topic)(event, headers);
          } catch (err) {
            fail(err);
          }
        },
      });
    },
    async publish(topic, event) {
      const m = cfg.mode === "structured" ? KafkaBinding.structured(event) : KafkaBinding.binary(event);
      const headers = {};
      for (const [k, v] of Object.entries(m.headers)) if (v !== undefined && v !== null) headers[k] = String(v);
      await producer.send({ topic, messages: [{ key: m.key ?? null, value: encodeData(m.value), headers }] });
    },
    async close() {
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
}

async function main() {
  const cfg = config();
  const transport = cfg.transport === "kafka" ? await kafkaTransport(cfg) : await amqpTransport(cfg);
  const pending = new Set(["users.registered", "orders.accepted"]);
  const timer = setTimeout(() => fail(new Error(`timed out after ${cfg.timeoutMs} ms; still waiting for: ${[...pending].join(", ")}`)), cfg.timeoutMs);
  let placed = null;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const done = (what) => {
    pending.delete(what);
    if (pending.size === 0) finish();
  };
  const guard = (fn) => (event, headers) => {
    try {
      fn(event, headers);
    } catch (err) {
      fail(err);
    }
  };

  await transport.subscribe(cfg.topics.registered, guard((event, headers) => {
    checkRegistered(cfg, event, headers);
    report("received", { event: event.toJSON(), correlation_id: headers.correlation_id });
    done("users.registered");
  }));
  await transport.subscribe(cfg.topics.accepted, guard((event, headers) => {
    assert.ok(placed, "a reply arrived before the order was published");
    checkAccepted(cfg, placed, event, headers);
    report("reply", { event: event.toJSON(), correlation_id: headers.correlation_id, causation_id: headers.causation_id });
    done("orders.accepted");
  }));
  if (transport.start) await transport.start();
  report("ready");

  if (cfg.sendBad) {
    const bad = badOrder(cfg);
    await transport.publish(cfg.topics.placed, bad);
    report("published-bad", { id: bad.id });
  }
  placed = orderPlaced(cfg);
  await transport.publish(cfg.topics.placed, placed);
  report("published", { id: placed.id, correlationid: placed.correlationid });

  await finished;
  clearTimeout(timer);
  await transport.close();
  report("done");
}

main().catch(fail);
