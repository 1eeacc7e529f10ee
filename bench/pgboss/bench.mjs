// pg-boss driven with its best settings, as a baseline for `make bench`.
//
//   node bench.mjs setup  <dsn> <queue>            install pg-boss, (re)create the queue
//   node bench.mjs send   <dsn> <queue> <count>    single sends, one at a time
//   node bench.mjs insert <dsn> <queue> <count>    insert() in batches of 1,000
//   node bench.mjs fill   <dsn> <queue> <count>    insert exactly count jobs, untimed
//   node bench.mjs lifecycle <dsn> <queue> <count> a job's whole life, phase by phase: insert()
//                                                  in batches of 1,000, fetch (100) and complete
//                                                  until empty, then supervise() deletes them;
//                                                  time and WAL bytes per phase
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
  } else if (command === 'lifecycle') {
    const count = Number(arg)
    const db = b.getDb()
    // The WAL insert position: what pg_stat_wal counts, without its once-a-second reporting lag.
    const wal = async () => BigInt((await db.executeSql("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint::text AS w")).rows[0].w)
    // Completed jobs go after a second (the least deleteAfterSeconds there is), so that one supervise() pass deletes them.
    await b.deleteQueue(queue).catch(() => {})
    await b.createQueue(queue, { deleteAfterSeconds: 1 })
    await db.executeSql('CHECKPOINT')
    const phases = {}
    const phase = async (name, work) => {
      const walBefore = await wal()
      const start = performance.now()
      await work()
      phases[name] = { seconds: (performance.now() - start) / 1000, wal_bytes: Number((await wal()) - walBefore) }
    }
    const jobs = Array.from({ length: 1000 }, () => ({ data: PAYLOAD }))
    await phase('send', async () => {
      for (let done = 0; done < count; done += 1000) await b.insert(queue, jobs.slice(0, Math.min(1000, count - done)))
    })
    const fetched = []
    await phase('fetch', async () => {
      for (;;) {
        const batch = await b.fetch(queue, { batchSize: 100 })
        if (batch.length === 0) break
        fetched.push(batch.map((job) => job.id))
      }
    })
    await phase('complete', async () => {
      for (const ids of fetched) await b.complete(queue, ids)
    })
    await new Promise((resolve) => setTimeout(resolve, 1500)) // past deleteAfterSeconds: not timed
    await phase('delete', async () => { await b.supervise(queue) })
    const left = (await db.executeSql(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = '${queue}'`)).rows[0].n
    if (left !== 0) throw new Error(`supervise() left ${left} jobs`)
    out.phases = phases
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
