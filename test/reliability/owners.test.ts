/**
 * Ownership by stable user ids, not names (issue 10, item 9), against the real server process
 * and the real `s3-sse user` command: a user created under the name of one that is gone never
 * reaches that user's buckets, removing a user who still owns buckets is refused with the
 * list of them, and a data dir whose buckets were owned by name is migrated in place.
 */
import Database from 'better-sqlite3'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SCHEMA_VERSION } from '../../src/server/meta/sqlite/index.js'
import { afterAll, describe, expect, it } from 'vitest'
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, ListBucketsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { errorCode, removeDir, runCli, startServer, stopAll, type TestServer } from '../server/helpers.js'

const dirs: string[] = []
afterAll(async () => {
  await stopAll()
  dirs.forEach(removeDir)
})

async function addUser(server: TestServer, name: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const out = await runCli(['user', 'add', name, '--data-dir', server.dataDir])
  expect(out.code, out.stderr).toBe(0)
  return { accessKeyId: /access key: (\S+)/.exec(out.stdout)![1], secretAccessKey: /secret key: (\S+)/.exec(out.stdout)![1] }
}

/** Takes a user out of users.json by hand (as an operator editing the file would, or an older version's remove). */
function dropFromUsersFile(dataDir: string, name: string): void {
  const file = join(dataDir, 'users.json')
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { users: Array<{ name: string }> }
  doc.users = doc.users.filter((u) => u.name !== name)
  writeFileSync(file, JSON.stringify(doc), { mode: 0o600 })
}

/** The server re-reads users.json at most once a second. */
const settle = () => new Promise((r) => setTimeout(r, 1200))

describe('bucket owners are stable user ids', () => {
  it('removing a user who owns buckets is refused, naming them; once they are gone it works', async () => {
    const server = await startServer()
    dirs.push(server.dataDir)
    const alice = server.client(await addUser(server, 'alice'))
    await alice.send(new CreateBucketCommand({ Bucket: 'alice-one' }))
    await alice.send(new CreateBucketCommand({ Bucket: 'alice-two' }))
    await alice.send(new PutObjectCommand({ Bucket: 'alice-one', Key: 'k', Body: 'mine' }))
    const refused = await runCli(['user', 'remove', 'alice', '--data-dir', server.dataDir])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/S3SSE_USER_HAS_BUCKETS/)
    expect(refused.stderr).toMatch(/alice-one.*alice-two|alice-two.*alice-one/)
    // Still there, still hers.
    expect((await alice.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).toEqual(['alice-one', 'alice-two'])
    await alice.send(new DeleteObjectCommand({ Bucket: 'alice-one', Key: 'k' }))
    await alice.send(new DeleteBucketCommand({ Bucket: 'alice-one' }))
    await alice.send(new DeleteBucketCommand({ Bucket: 'alice-two' }))
    const removed = await runCli(['user', 'remove', 'alice', '--data-dir', server.dataDir])
    expect(removed.code, removed.stderr).toBe(0)
    alice.destroy()
    await server.stop()
  })

  it('a new user under a removed user\'s name does not reach the old user\'s buckets', async () => {
    const server = await startServer()
    dirs.push(server.dataDir)
    const first = server.client(await addUser(server, 'carol'))
    await first.send(new CreateBucketCommand({ Bucket: 'carol-data' }))
    await first.send(new PutObjectCommand({ Bucket: 'carol-data', Key: 'secret', Body: 'first carol' }))
    first.destroy()
    dropFromUsersFile(server.dataDir, 'carol')
    const second = server.client(await addUser(server, 'carol'))
    await settle()
    expect(await errorCode(second.send(new GetObjectCommand({ Bucket: 'carol-data', Key: 'secret' })))).toBe('AccessDenied')
    expect(await errorCode(second.send(new PutObjectCommand({ Bucket: 'carol-data', Key: 'x', Body: 'x' })))).toBe('AccessDenied')
    expect((await second.send(new ListBucketsCommand({}))).Buckets ?? []).toEqual([])
    expect(await errorCode(second.send(new CreateBucketCommand({ Bucket: 'carol-data' })))).toBe('BucketAlreadyExists')
    second.destroy()
    await server.stop()
  })

  it('a data dir from before (owners by name, users without ids) is migrated: the same users keep their buckets', async () => {
    const server = await startServer()
    dirs.push(server.dataDir)
    const dave = server.client(await addUser(server, 'dave'))
    await dave.send(new CreateBucketCommand({ Bucket: 'dave-old' }))
    await dave.send(new PutObjectCommand({ Bucket: 'dave-old', Key: 'k', Body: 'kept' }))
    dave.destroy()
    await server.stop()
    // Turn it into what version 2 wrote: owner columns hold names, users.json has no ids.
    const usersFile = join(server.dataDir, 'users.json')
    const doc = JSON.parse(readFileSync(usersFile, 'utf8')) as { users: Array<Record<string, unknown>> }
    for (const u of doc.users) delete u.id
    writeFileSync(usersFile, JSON.stringify(doc), { mode: 0o600 })
    const db = new Database(join(server.dataDir, 'meta.sqlite'))
    db.exec(`UPDATE buckets SET owner = 'dave' WHERE name = 'dave-old'; PRAGMA user_version = 2;`)
    db.close()

    const again = await startServer({ dataDir: server.dataDir })
    const keys = { accessKeyId: doc.users[0].accessKey as string, secretAccessKey: doc.users[0].secretKey as string }
    const daveAgain = again.client(keys)
    const got = await daveAgain.send(new GetObjectCommand({ Bucket: 'dave-old', Key: 'k' }))
    expect(await got.Body!.transformToString()).toBe('kept')
    const owners = new Database(join(server.dataDir, 'meta.sqlite'), { readonly: true })
    expect((owners.prepare("SELECT owner FROM buckets WHERE name = 'dave-old'").get() as { owner: string }).owner).not.toBe('dave')
    expect(owners.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
    owners.close()
    daveAgain.destroy()
    // And a later dave is someone else.
    dropFromUsersFile(server.dataDir, 'dave')
    const newDave = again.client(await addUser(again, 'dave'))
    await settle()
    expect(await errorCode(newDave.send(new GetObjectCommand({ Bucket: 'dave-old', Key: 'k' })))).toBe('AccessDenied')
    newDave.destroy()
    await again.stop()
  })
})
