// CloudEvents AMQP binding (binary content mode) on top of the SDK's Kafka
// binding.
//
// The cloudevents npm package has HTTP, Kafka and MQTT bindings but no AMQP
// one. The AMQP binding's binary mode differs from the Kafka binding's in
// exactly two ways, and these functions are those two differences, nothing
// more; building and checking the event is left to the SDK:
//
//   1. an attribute travels as the application property (on RabbitMQ, the
//      header) "cloudEvents_<name>" instead of "ce_<name>"; receivers also
//      accept the older "cloudEvents:<name>";
//   2. datacontenttype travels as the AMQP content-type property instead of
//      a "content-type" header.
//
// Every other header (correlation_id, causation_id, traceparent) is passed
// through unchanged.
//
// In structured content mode the AMQP binding carries the whole event as
// the body, with the event format's media type (application/cloudevents+json)
// as the content-type property; toAMQPStructured writes that, and fromAMQP
// reads both modes.
"use strict";

const { Kafka, HTTP, CONSTANTS } = require("cloudevents");

const PREFIX = "cloudEvents_";
const PREFIX_LEGACY = "cloudEvents:";
const KAFKA_PREFIX = "ce_";
const CONTENT_TYPE = CONSTANTS.HEADER_CONTENT_TYPE; // "content-type"

// toAMQP serialises a CloudEvent with the SDK's binary binding and returns
// the body and the amqplib publish options. extraHeaders are copied as they
// are (for example { correlation_id } for a consumer that reads only that).
function toAMQP(event, extraHeaders = {}) {
  const m = Kafka.binary(event);
  const headers = { ...extraHeaders };
  let contentType;
  for (const [key, value] of Object.entries(m.headers)) {
    if (value === undefined || value === null) continue;
    if (key === CONTENT_TYPE) {
      contentType = String(value);
    } else if (key === "ce_datacontenttype") {
      // The SDK writes datacontenttype twice; on AMQP it is the property only.
      continue;
    } else if (key.startsWith(KAFKA_PREFIX)) {
      headers[PREFIX + key.slice(KAFKA_PREFIX.length)] = String(value);
    } else {
      headers[key] = String(value);
    }
  }
  return {
    body: encodeData(m.value),
    options: { headers, contentType, messageId: event.id, persistent: true },
  };
}

// toAMQPStructured serialises a CloudEvent in structured content mode: the
// whole event as a JSON body (the SDK's HTTP structured serialiser) and
// application/cloudevents+json as the AMQP content-type property. The SDK
// does not validate here, so an invalid event can be sent on purpose.
function toAMQPStructured(event, extraHeaders = {}) {
  const m = HTTP.structured(event);
  return {
    body: Buffer.from(m.body),
    options: { headers: { ...extraHeaders }, contentType: m.headers[CONTENT_TYPE], messageId: event.id, persistent: true },
  };
}

// fromAMQP turns an amqplib delivery into a CloudEvent with the SDK's
// binding, in binary or structured mode (the SDK tells them apart by the
// content type). It does not validate: call event.validate(). The
// transport headers (correlation_id, ...) are returned beside the event.
function fromAMQP(msg) {
  const raw = msg.properties.headers || {};
  const headers = {};
  for (const [key, value] of Object.entries(raw)) {
    const text = Buffer.isBuffer(value) ? value.toString() : String(value);
    if (key.startsWith(PREFIX)) {
      headers[KAFKA_PREFIX + key.slice(PREFIX.length)] = text;
    } else if (key.startsWith(PREFIX_LEGACY)) {
      headers[KAFKA_PREFIX + key.slice(PREFIX_LEGACY.length)] = text;
    } else {
      headers[key] = text;
    }
  }
  if (msg.properties.contentType) headers[CONTENT_TYPE] = msg.properties.contentType;
  const event = Kafka.toEvent({ headers, value: msg.content, key: headers.ce_partitionkey });
  return { event, headers };
}

// encodeData returns the bytes of an event's data as the binding writes it:
// JSON for objects, the string or buffer itself otherwise.
function encodeData(data) {
  if (data === undefined || data === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(data)) return data;
  if (typeof data === "string") return Buffer.from(data);
  return Buffer.from(JSON.stringify(data));
}

module.exports = { toAMQP, toAMQPStructured, fromAMQP, encodeData, PREFIX, PREFIX_LEGACY };
