// Test-only launcher for the fauxqs SQS emulator used by the adapters/sqs
// integration tests. Unlike the fauxqs CLI (which listens on 0.0.0.0), it
// binds to the loopback address only. The tests start it detached when it
// is not running (internal/testenv.SQSURL), as start.sh does, and leave it
// running; it stops on SIGTERM or SIGINT.
//
//   HEXERACT_SQS_PORT (default 4566)      port to listen on
//   HEXERACT_SQS_HOST (default 127.0.0.1) address to bind
import { buildApp } from "fauxqs";

const port = parseInt(process.env.HEXERACT_SQS_PORT ?? "4566", 10);
const host = process.env.HEXERACT_SQS_HOST ?? "127.0.0.1";
const app = buildApp({ logger: false });
const address = await app.listen({ port, host });
console.log(`fauxqs SQS emulator listening on ${address}`);

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    app.close().finally(() => process.exit(0));
  });
}
