// pg-boss driven from Python, one JSON line per call, for the conformance suite.
//
//   node pgboss_driver.mjs <dsn> <schema>
//
// Prints {"ready": true} once pg-boss is installed in <schema>, then reads lines
// {"op": "...", "args": [...]} on stdin and answers each with one line
// {"ok": true, "result": ...} or {"ok": false, "error": "..."}. Background
// supervision and scheduling are off: the suite calls what it wants to observe.
import { PgBoss } from '../../bench/pgboss/node_modules/pg-boss/dist/index.js'
import { createInterface } from 'node:readline'

const [dsn, schema] = process.argv.slice(2)
const boss = new PgBoss({ connectionString: dsn, schema, supervise: false, schedule: false, max: 2 })
boss.on('error', (error) => console.error(String(error?.stack || error)))
await boss.start()

const ids = (jobs) => jobs.map((job) => job.id)

const ops = {
  createQueue: (name, options) => boss.createQueue(name, options),
  send: (name, data, options) => boss.send(name, data, options),
  sendThrottled: (name, data, options, seconds, key) => boss.sendThrottled(name, data, options, seconds, key),
  sendDebounced: (name, data, options, seconds, key) => boss.sendDebounced(name, data, options, seconds, key),
  insert: async (name, jobs) => boss.insert(name, jobs, { returnId: true }),
  fetch: async (name, options) => ids(await boss.fetch(name, options)),
  complete: (name, id, data) => boss.complete(name, id, data),
  fail: (name, id, data) => boss.fail(name, id, data),
  cancel: (name, id) => boss.cancel(name, id),
  resume: (name, id) => boss.resume(name, id),
  retry: (name, id) => boss.retry(name, id),
  deleteJob: (name, id) => boss.deleteJob(name, id),
  subscribe: (event, name) => boss.subscribe(event, name),
  unsubscribe: (event, name) => boss.unsubscribe(event, name),
  publish: (event, data, options) => boss.publish(event, data, options),
  // Expiry and deletion now, whatever the intervals (their claims are cleared first).
  supervise: async (name) => {
    await boss.getDb().executeSql(
      `UPDATE ${schema}.queue SET monitor_on = NULL, monitor_claim_on = NULL, maintain_on = NULL`
    )
    await boss.supervise(name)
    return true
  }
}

console.log(JSON.stringify({ ready: true }))
for await (const line of createInterface({ input: process.stdin })) {
  const { op, args } = JSON.parse(line)
  try {
    if (!(op in ops)) throw new Error(`unknown op ${op}`)
    const result = await ops[op](...args)
    console.log(JSON.stringify({ ok: true, result: result ?? null }))
  } catch (error) {
    console.log(JSON.stringify({ ok: false, error: String(error?.message || error) }))
  }
}
await boss.stop({ graceful: false, wait: true })
