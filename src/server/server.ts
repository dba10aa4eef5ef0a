/**
 * The S3 endpoint: HTTPS (and plain HTTP unless turned off) over one request handler.
 */
import { randomBytes } from 'node:crypto'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { cachedKms, countingKms, guardedKms, isKmsAdmin, KMS_METHODS, type Kms } from '../keys/index.js'
import { handleAdmin, isAdminPath } from './admin/index.js'
import { authenticate, canAccess } from './auth/index.js'
import { policyGrants } from './authorize.js'
import { sweepOrphans } from './commit.js'
import { ConsoleService, isConsolePath } from './console/index.js'
import { loadRootCredentials, type RootCredentials } from './credentials.js'
import { preparePrivateDataDir } from './datadir.js'
import { withEmbeddedDefaults } from './defaults.js'
import { enforceTransport, type TransportRequest } from './encryption.js'
import { escaped } from './guard.js'
import * as buckets from './handlers/buckets.js'
import * as encryption from './handlers/encryption.js'
import * as multipart from './handlers/multipart.js'
import * as objects from './handlers/objects.js'
import { postObject } from './handlers/post.js'
import * as replication from './handlers/replication.js'
import * as policy from './handlers/policy.js'
import * as tagging from './handlers/tagging.js'
import { parseQuery, sendError, type RequestContext } from './http.js'
import { JobRunner } from './jobs/runner.js'
import type { MetaStore } from './meta/index.js'
import { Replicator } from './replication.js'
import { resolveTarget, selectOperation, type Operation } from './router.js'
import { DEFAULT_JOBS, DEFAULT_REPLICATION, type Logger, type ServerConfig, type ServerState, type SweepSettings } from './state.js'
import type { BlobStore } from './store/blob.js'
import { DEFAULT_TIMEOUTS, serverTimeoutOptions, watchIdle, type Timeouts } from './timeouts.js'
import { loadTls, type TlsMaterial } from './tls.js'

type Handler = (ctx: RequestContext) => Promise<void>

const HANDLERS: Record<Operation, Handler> = {
  ListBuckets: buckets.listBuckets,
  CreateBucket: buckets.createBucket,
  HeadBucket: buckets.headBucket,
  DeleteBucket: buckets.deleteBucket,
  GetBucketLocation: buckets.getBucketLocation,
  GetBucketVersioning: buckets.getBucketVersioning,
  ListObjects: buckets.listObjects,
  ListObjectsV2: buckets.listObjectsV2,
  ListObjectVersions: buckets.listObjectVersions,
  ListMultipartUploads: buckets.listMultipartUploads,
  DeleteObjects: objects.deleteObjects,
  PostObject: postObject,
  PutObject: objects.putObject,
  CopyObject: objects.copyObject,
  GetObject: objects.getObject,
  HeadObject: objects.headObject,
  DeleteObject: objects.deleteObject,
  CreateMultipartUpload: multipart.createMultipartUpload,
  UploadPart: multipart.uploadPart,
  UploadPartCopy: multipart.uploadPartCopy,
  CompleteMultipartUpload: multipart.completeMultipartUpload,
  AbortMultipartUpload: multipart.abortMultipartUpload,
  ListParts: multipart.listParts,
  GetBucketEncryption: encryption.getBucketEncryption,
  PutBucketEncryption: encryption.putBucketEncryption,
  DeleteBucketEncryption: encryption.deleteBucketEncryption,
  GetBucketReplication: replication.getBucketReplication,
  PutBucketReplication: replication.putBucketReplication,
  DeleteBucketReplication: replication.deleteBucketReplication,
  GetBucketPolicy: policy.getBucketPolicy,
  PutBucketPolicy: policy.putBucketPolicy,
  DeleteBucketPolicy: policy.deleteBucketPolicy,
  GetObjectTagging: tagging.getObjectTagging,
  PutObjectTagging: tagging.putObjectTagging,
  DeleteObjectTagging: tagging.deleteObjectTagging,
}

export const DEFAULT_CONFIG: Omit<ServerConfig, 'dataDir'> = {
  host: '127.0.0.1',
  httpsPort: 9443,
  httpPort: 9000,
  region: 'us-east-1',
  mode: 'oss',
  domains: ['s3.localhost', 'localhost'],
}

export interface RunningServer {
  state: ServerState
  tls: TlsMaterial
  rootCredentials: RootCredentials
  httpsUrl: string
  httpUrl?: string
  /** Orphan blobs (stored, unreferenced) removed at start. */
  swept: number
  /** Stops accepting, lets in-flight requests finish, then closes the stores it built. */
  close(): Promise<void>
}

/**
 * What the server runs on. Each seam left out gets its embedded default in the data dir
 * (src/server/defaults.ts); what is given stays the caller's to close.
 */
export interface StartOptions {
  config: ServerConfig
  /** Keys (the data path; an admin surface, if it has one, serves the console's key listing). */
  kms?: Kms
  /** Sealed object data. */
  blobs?: BlobStore
  /** Buckets, objects, uploads, the replication queue, users. */
  meta?: MetaStore
  log?: Logger
}

async function handle(state: ServerState, web: ConsoleService, req: IncomingMessage, res: ServerResponse, secure: boolean, timeouts: Timeouts): Promise<void> {
  const requestId = randomBytes(8).toString('hex').toUpperCase()
  const url = req.url ?? '/'
  const ctx: RequestContext = {
    req,
    res,
    state,
    requestId,
    method: (req.method ?? 'GET').toUpperCase(),
    secure,
    bucket: '',
    key: '',
    rawPath: url.split('?')[0],
    queryPairs: [],
    query: new Map(),
  }
  // No stream without an error handler: a request cut off (client gone, idle timeout) must
  // never become an unhandled 'error' event; whoever reads the body sees the error itself.
  req.on('error', () => undefined)
  res.on('error', () => undefined)
  watchIdle(ctx, timeouts.idleMs)
  try {
    if (ctx.rawPath === '/-/health') {
      const body = JSON.stringify({ status: 'ok' })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) })
      res.end(ctx.method === 'HEAD' ? undefined : body)
      return
    }
    if (ctx.rawPath === '/-/metrics') {
      const body = await metrics(state)
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': String(Buffer.byteLength(body)) })
      res.end(ctx.method === 'HEAD' ? undefined : body)
      return
    }
    // The admin API and the web console (no bucket name starts with '-', so they shadow none).
    if (isAdminPath(ctx.rawPath)) return await handleAdmin(ctx)
    if (isConsolePath(ctx.rawPath)) return await web.handle(ctx)
    const target = resolveTarget(url, req.headers.host, state.config.domains)
    ctx.bucket = target.bucket
    ctx.key = target.key
    ctx.rawPath = target.rawPath
    ctx.queryPairs = parseQuery(target.rawQuery)
    for (const [k, v] of ctx.queryPairs) if (!ctx.query.has(k)) ctx.query.set(k, v)
    const op = selectOperation(ctx.method, target, ctx.query, req.headers['content-type'], req.headers['x-amz-copy-source'] !== undefined)
    // Authenticate, then (in enforceTransport and the handler) authorise, and only then the
    // rules that look at stored objects. PostObject authenticates from its form.
    ctx.op = op
    if (op !== 'PostObject') {
      await authenticate(ctx)
      const user = ctx.user
      const transport: TransportRequest = {
        op, bucket: ctx.bucket, key: ctx.key, uploadId: ctx.query.get('uploadId'), headers: req.headers,
        // The owner, root, or a user the bucket's policy grants anything (authorize.ts decides the rest).
        mayUse: (bucket) => canAccess(user, bucket) || policyGrants(bucket, user),
      }
      await enforceTransport(state, transport, { secure, sigV4: ctx.signatureVersion === 4 })
    }
    await HANDLERS[op](ctx)
  } catch (err) {
    sendError(ctx, err)
  }
}

/** Jobs /-/metrics reports: every one not finished, and those that finished in the last hour. */
const METRICS_JOBS_FOR_MS = 60 * 60 * 1000

/**
 * Counters in the Prometheus text format: KMS calls that reached the KMS (past the key
 * cache and bucket keys), by method; the replication queue and its outcomes; the progress of
 * jobs (by job id and kind) and what this process's workers did. No names, keys or secrets.
 */
async function metrics(state: ServerState): Promise<string> {
  const r = state.replicator
  const now = Date.now()
  const jobs = (await state.meta.listJobs({ limit: 200 })).filter((j) => j.finishedAt === null || now - j.finishedAt < METRICS_JOBS_FOR_MS)
  const label = (j: { id: string; kind: string }) => `job="${j.id}",kind="${j.kind}"`
  const jobLines = [
    '# HELP s3sse_job_state The state of each job: 1 on the line of its state.',
    '# TYPE s3sse_job_state gauge',
    ...jobs.map((j) => `s3sse_job_state{${label(j)},state="${j.state}"} 1`),
    '# HELP s3sse_job_objects Objects a job has done (of="done"), and all it expects (of="total": what was under its prefix when it started, or more).',
    '# TYPE s3sse_job_objects gauge',
    ...jobs.flatMap((j) => [
      `s3sse_job_objects{${label(j)},of="done"} ${j.done.objects}`,
      ...(j.total ? [`s3sse_job_objects{${label(j)},of="total"} ${Math.max(j.total.objects, j.done.objects)}`] : []),
    ]),
    '# HELP s3sse_job_bytes Bytes (plaintext sizes) of the objects a job has done, and of all it expects.',
    '# TYPE s3sse_job_bytes gauge',
    ...jobs.flatMap((j) => [
      `s3sse_job_bytes{${label(j)},of="done"} ${j.done.bytes}`,
      ...(j.total ? [`s3sse_job_bytes{${label(j)},of="total"} ${Math.max(j.total.bytes, j.done.bytes)}`] : []),
    ]),
    '# HELP s3sse_job_outcomes Objects a job has done, by outcome: changed (encrypted, re-wrapped, verified intact), skipped, errors, damaged.',
    '# TYPE s3sse_job_outcomes gauge',
    ...jobs.flatMap((j) => (['changed', 'skipped', 'errors', 'damaged'] as const).map((o) => `s3sse_job_outcomes{${label(j)},outcome="${o}"} ${j.done[o]}`)),
    '# HELP s3sse_job_objects_total Objects the jobs worked by this process have done since it started.',
    '# TYPE s3sse_job_objects_total counter',
    `s3sse_job_objects_total ${state.jobs?.objects ?? 0}`,
    '# HELP s3sse_scrub_damaged_objects_total Damaged objects the jobs of this process have found since it started.',
    '# TYPE s3sse_scrub_damaged_objects_total counter',
    `s3sse_scrub_damaged_objects_total ${state.jobs?.damaged ?? 0}`,
  ]
  const lines = [
    '# HELP s3sse_kms_calls_total Calls that reached the KMS (after the key cache and bucket keys), by method.',
    '# TYPE s3sse_kms_calls_total counter',
    ...KMS_METHODS.map((m) => `s3sse_kms_calls_total{method="${m}"} ${state.kmsCalls?.counts[m] ?? 0}`),
    '# HELP s3sse_replication_queued Writes waiting to be replicated.',
    '# TYPE s3sse_replication_queued gauge',
    `s3sse_replication_queued ${await state.meta.pendingReplications()}`,
    '# HELP s3sse_replication_total Replication attempts since start, by outcome: completed, failed (given up), retry (failed, to be tried again).',
    '# TYPE s3sse_replication_total counter',
    `s3sse_replication_total{outcome="completed"} ${r?.completed ?? 0}`,
    `s3sse_replication_total{outcome="failed"} ${r?.failed ?? 0}`,
    `s3sse_replication_total{outcome="retry"} ${r?.retried ?? 0}`,
    '# HELP s3sse_escaped_errors_total Exceptions and rejections no handler caught (bugs), logged by the process guard.',
    '# TYPE s3sse_escaped_errors_total counter',
    `s3sse_escaped_errors_total ${escaped.count}`,
    ...jobLines,
  ]
  return lines.join('\n') + '\n'
}

/** A fleet's orphan sweep: now, then every intervalMs, never two at once, stopped with the server. */
function backgroundSweep(state: ServerState, s: SweepSettings): { stop(): Promise<void> } {
  let running: Promise<void> | undefined
  let stopped = false
  const abort = new AbortController()
  const run = () => {
    if (running || stopped) return
    running = sweepOrphans(state, Date.now() - s.graceMs, { settleMs: s.settleMs, signal: abort.signal })
      .then((r) => {
        if (r.stored + r.staged > 0) state.log.info(`sweep: removed ${r.stored} unreferenced blobs and ${r.staged} abandoned staged blobs`)
      })
      .catch((err) => state.log.error(`sweep: ${(err as Error).message}`))
      .finally(() => (running = undefined))
  }
  const timer = setInterval(run, s.intervalMs)
  timer.unref()
  run()
  return {
    async stop() {
      stopped = true
      clearInterval(timer)
      abort.abort()
      await running
    },
  }
}

const consoleLogger: Logger = {
  info: (m) => process.stdout.write(m + '\n'),
  error: (m) => process.stderr.write(m + '\n'),
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const { config, log = consoleLogger } = opts
  const dataDir = resolve(config.dataDir)
  preparePrivateDataDir(dataDir, log)
  const rootCredentials = loadRootCredentials(dataDir)
  const tls = await loadTls(dataDir, { certPath: config.tlsCert, keyPath: config.tlsKey })
  const deps = await withEmbeddedDefaults(dataDir, { ...opts, log })
  let state: ServerState
  let swept: number
  try {
    // The KMS, cached so that bucket keys and repeated reads of one object cost no KMS call
    // each; the calls that do reach it are counted.
    // Every call to the KMS, from anywhere in the server, through the one wrapper (kmsCall).
    const kms = guardedKms(deps.kms)
    const kmsCalls = countingKms(kms)
    state = {
      config: { ...config, dataDir }, blobs: deps.blobs, meta: deps.meta, kms: cachedKms(kmsCalls, config.keyCache), kmsCalls,
      ...(isKmsAdmin(kms) ? { kmsAdmin: kms } : {}),
      root: rootCredentials.user, log,
      ...(deps.space ? { space: deps.space } : {}),
    }
    // One machine: nothing is in flight before the server listens, so whatever a crash left is
    // swept now. A fleet sweeps in the background instead (below): other gateways are writing.
    swept = config.sweep ? 0 : (await sweepOrphans(state, Date.now())).stored
  } catch (err) {
    await deps.close()
    throw err
  }
  const replicator = new Replicator(state, { ...DEFAULT_REPLICATION, ...config.replication })
  state.replicator = replicator
  const jobs = new JobRunner(state, { ...DEFAULT_JOBS, ...config.jobs })
  state.jobs = jobs

  const web = new ConsoleService(state)
  const inFlight = new Set<Promise<void>>()
  const track = (secure: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    const p = handle(state, web, req, res, secure, timeouts).catch((err) => log.error(`unhandled: ${String(err)}`))
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
  }
  const timeouts: Timeouts = { ...DEFAULT_TIMEOUTS, ...config.timeouts }
  const serverOptions = serverTimeoutOptions(timeouts)
  const https = createHttpsServer({ ...serverOptions, cert: tls.cert, key: tls.key }, track(true))
  const servers: Server[] = [https]
  let http: Server | undefined
  if (config.httpPort !== null) {
    http = createHttpServer(serverOptions, track(false))
    servers.push(http)
  }
  // Expect: 100-continue is answered by the handler once it is ready for the body (continueBody).
  https.on('checkContinue', track(true))
  http?.on('checkContinue', track(false))
  const listen = (s: Server, port: number) =>
    new Promise<number>((ok, fail) => {
      s.once('error', fail)
      s.listen(port, config.host, () => {
        s.off('error', fail)
        ok((s.address() as AddressInfo).port)
      })
    })
  const urlHost = config.host.includes(':') ? `[${config.host}]` : config.host
  let httpsPort: number
  let httpPort: number | undefined
  try {
    httpsPort = await listen(https, config.httpsPort)
    web.httpsPort = httpsPort
    if (http && config.httpPort !== null) httpPort = await listen(http, config.httpPort)
  } catch (err) {
    for (const s of servers) s.close()
    await deps.close()
    throw err
  }
  // Writes queued before a stop or crash are picked up now; new ones as they commit. Jobs
  // resume where they stopped.
  await replicator.start()
  await jobs.start()
  const sweeper = config.sweep ? backgroundSweep(state, config.sweep) : undefined
  // Held back again now that the start is done (released before it, for a full disk's sake).
  void state.space?.restore()

  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= (async () => {
      const closed = Promise.all(servers.map((s) => new Promise<void>((ok) => s.close(() => ok()))))
      for (const s of servers) s.closeIdleConnections()
      await Promise.all([...inFlight])
      // Keep-alive connections whose last request just finished are idle now.
      for (const s of servers) s.closeIdleConnections()
      const timer = setTimeout(() => servers.forEach((s) => s.closeAllConnections()), 10_000)
      await closed
      clearTimeout(timer)
      // Requests are done; the objects jobs are working on finish and are recorded, then
      // replications in flight finish; the rest waits for the next start.
      await jobs.stop()
      await replicator.stop()
      await sweeper?.stop()
      await deps.close()
    })()
    return closing
  }
  return {
    state,
    tls,
    rootCredentials,
    httpsUrl: `https://${urlHost}:${httpsPort}`,
    httpUrl: httpPort !== undefined ? `http://${urlHost}:${httpPort}` : undefined,
    swept,
    close,
  }
}

