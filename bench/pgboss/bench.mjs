// pg-boss driven with its best settings, as a baseline for `make bench`.
//
//   node bench.mjs setup  <dsn> <queue>            install pg-boss, (re)create the queue
//   node bench.mjs send   <dsn> <queue> <count>    single sends, one at a time
//   node bench.mjs insert <dsn> <queue> <count>    insert() in batches of 1,000
//   node bench.mjs fill   <dsn> <queue> <count>    insert exactly count jobs, untimed
//   node bench.mjs drain  <dsn> <queue> <batch>    prints "ready", waits for a line on
//                                                  stdin, then fetches (batchSize) and
//                                                  completes by ids until the queue is empty
//
// Each command prints one JSON line on stdout. Background supervision and
// scheduling are off so that only the measured calls touch the database.
import { PgBoss } from 'pg-boss'
import { createInterface } from 'node:readline'

const PAYLOAD = { podId: 'pod-123', spec: { tier: 'dev.small', image: 'ubuntu:24.04' }, userId: 'user-1' }
const [command, dsn, queue, arg] = process.argv.slice(2)

async function boss () {
  const b = new PgBoss({ connectionString: dsn, supervise: false, schedule: false, max: 2 })
  b.on('error', (error) => { console.error(error); process.exit(1) })
  await b.start()
  return b
}

async function main () {
  const b = await boss()
  const out = {}
  if (command === 'setup') {
    await b.deleteQueue(queue).catch(() => {})
    await b.createQueue(queue)
  } else if (command === 'send') {
    const count = Number(arg)
    for (let i = 0; i < 200; i++) await b.send(queue, PAYLOAD) // warm up
    const start = performance.now()
    for (let i = 0; i < count; i++) await b.send(queue, PAYLOAD)
    out.rate = count / ((performance.now() - start) / 1000)
  } else if (command === 'insert') {
    const count = Number(arg)
    const jobs = Array.from({ length: 1000 }, () => ({ data: PAYLOAD }))
    await b.insert(queue, jobs) // warm up
    const start = performance.now()
    for (let done = 0; done < count; done += 1000) await b.insert(queue, jobs)
    out.rate = count / ((performance.now() - start) / 1000)
  } else if (command === 'fill') {
    const count = Number(arg)
    for (let done = 0; done < count; done += 1000) {
      const size = Math.min(1000, count - done)
      await b.insert(queue, Array.from({ length: size }, () => ({ data: PAYLOAD })))
    }
  } else if (command === 'drain') {
    const batchSize = Number(arg)
    console.log('ready')
    const lines = createInterface({ input: process.stdin })
    await new Promise((resolve) => lines.once('line', resolve))
    lines.close()
    let drained = 0
    for (;;) {
      const jobs = await b.fetch(queue, { batchSize })
      if (jobs.length === 0) break
      await b.complete(queue, jobs.map((job) => job.id))
      drained += jobs.length
    }
    out.drained = drained
  } else {
    throw new Error(`unknown command ${command}`)
  }
  await b.stop({ graceful: false, wait: true })
  console.log(JSON.stringify(out))
}

main().catch((error) => { console.error(error); process.exit(1) })
