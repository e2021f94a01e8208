// The Coffer SDK from Kotlin, end to end, against a real coffer-vault on loopback
// (tests/bindings/kotlin/run.sh starts it): old device to new device with a wrong and a
// right password, restore byte for byte, a recovery-key device restoring some paths, a
// cancelled backup, a backup killed mid-way that resumes without uploading its finished
// packs again, a cancelled restore run again, key rotation with a new device connecting
// right after it, a password change and disable.

import coffer.*
import java.io.File
import java.util.Random
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlin.system.exitProcess

const val PASSWORD = "correct horse battery staple"
const val MIB = 1024L * 1024L

fun check(ok: Boolean, what: () -> String) {
    if (!ok) throw AssertionError(what())
}

fun step(s: String) = println("==> $s")

/** The call must fail with a CofferException of `code`; returns it. */
fun expectError(code: String, call: () -> Unit): CofferException {
    try {
        call()
    } catch (e: CofferException) {
        check(e.code() == code) { "expected $code, got ${e.code()}: ${e.message()}" }
        return e
    }
    throw AssertionError("expected a CofferException with code $code, the call succeeded")
}

fun randomFile(f: File, size: Int, seed: Long) {
    f.parentFile.mkdirs()
    val b = ByteArray(size)
    Random(seed).nextBytes(b)
    f.writeBytes(b)
}

/** Relative path -> contents of every regular file under `dir`. */
fun tree(dir: File): Map<String, List<Byte>> =
    dir.walkTopDown().filter { it.isFile }
        .associate { it.relativeTo(dir).path to it.readBytes().toList() }

fun options(dir: File, repo: File) = DeviceOptions(
    configDir = dir.path,
    repo = repo.path,
    keyStore = KeyStoreChoice.FILE,
    ksfProfile = "argon2id-test", // cheap Argon2id: tests only
)

/** Counts progress events; optionally cancels at the first, or slows every one down. */
class Listener(val cancel: CancelHandle? = null, val delayMs: Long = 0) : ProgressListener {
    val events = AtomicInteger()
    val files = AtomicInteger()
    override fun onEvent(event: ProgressEvent) {
        events.incrementAndGet()
        if (event is ProgressEvent.File) files.incrementAndGet()
        cancel?.cancel()
        if (delayMs > 0) Thread.sleep(delayMs)
    }
}

/** Cancels `handle` when the `after`-th file starts (events come from many threads). */
class CancelAfter(val handle: CancelHandle, val after: Int) : ProgressListener {
    val files = AtomicInteger()
    override fun onEvent(event: ProgressEvent) {
        if (event is ProgressEvent.File && files.incrementAndGet() == after) handle.cancel()
    }
}

/** The killed process: backs up `src` slowly until the parent kills it. */
fun child(configDir: String, tokenFile: String, src: String) {
    val coffer = Coffer.open(configDir, File(tokenFile).readText().trim().toByteArray())
    coffer.backup(listOf(src), Listener(delayMs = 150), null)
    println("child: the backup finished before it was killed")
}

fun main(args: Array<String>) {
    if (args.isNotEmpty() && args[0] == "child") {
        child(args[1], args[2], args[3])
        return
    }
    try {
        flow()
        println("OK: the Kotlin flow passed")
    } catch (e: Throwable) {
        System.err.println("FAILED: $e")
        e.printStackTrace()
        exitProcess(1)
    }
}

fun flow() {
    val work = File(System.getenv("COFFER_TEST_WORK") ?: error("run through run.sh"), "kt")
    val url = System.getenv("COFFER_TEST_VAULT_URL")!!
    val tokenFile = System.getenv("COFFER_TEST_TOKEN_FILE")!!
    val vault = VaultAccess(url, File(tokenFile).readText().trim().toByteArray(), "alice")
    val repo = File(work, "cloud")

    step("a chat folder: a database, a photo and a note")
    val chat = File(work, "chat")
    randomFile(File(chat, "msgstore.db"), 300_000, 1)
    randomFile(File(chat, "media/photo.jpg"), 1_000_000, 2)
    File(chat, "notes.txt").writeText("hello from the old phone\n")

    step("old device: a new key behind a password, then a backup with progress")
    val old = Coffer.createWithPassword(options(File(work, "old"), repo), vault, PASSWORD.toByteArray())
    val total = 300_000uL + 1_000_000uL + 25uL
    val before = old.estimateBackup(listOf(chat.path))
    check(before.files == 3uL && before.filesChanged == 3uL && before.bytesToUpload == total) { "estimate before: $before" }
    val progress = Listener()
    val first = old.backup(listOf(chat.path), progress, null)
    check(first.files == 3uL) { "files: ${first.files}" }
    check(progress.files.get() == 3) { "${progress.files.get()} file events of ${progress.events.get()}" }
    check(first.vaultHeadKept) { "the vault did not keep the head: ${first.vaultHeadError}" }

    step("the estimate of the next backup: nothing to upload, then one changed note")
    val same = old.estimateBackup(listOf(chat.path))
    check(same.filesChanged == 0uL && same.bytesToUpload == 0uL && same.bytesTotal == total) { "estimate after: $same" }
    File(chat, "notes.txt").appendText("!")
    val one = old.estimateBackup(listOf(chat.path))
    check(one.filesChanged == 1uL && one.bytesToUpload == 26uL) { "estimate after a change: $one" }
    expectError("path_not_found") { old.estimateBackup(listOf(File(work, "nope").path)) }
    File(chat, "notes.txt").writeText("hello from the old phone\n") // as backed up
    val st = old.status()
    check(st.snapshots == 1uL) { "status: $st" }
    val max = st.vault!!.maxGuesses!!
    check(st.vault!!.guessesLeft == max) { "status: $st" }
    val recoveryKey = old.recoveryKey(PASSWORD.toByteArray())
    check(recoveryKey.size == 79) { "recovery key of ${recoveryKey.size} bytes" }

    step("new device: a wrong password is a typed exception with guesses left")
    val newDir = File(work, "new")
    val wrong = expectError("wrong_password") {
        Coffer.connectWithPassword(options(newDir, repo), vault, "not my password".toByteArray())
    }
    check(wrong.guessesLeft() == max - 1u) { "guesses left: ${wrong.guessesLeft()} of $max" }
    check(!wrong.message().contains("not my password")) { "the message repeats the password" }
    check(vaultStatus(vault).guessesLeft == max - 1u) { "vault status after a wrong guess" }
    check(!File(newDir, "config.json").exists()) { "a failed connect wrote a setup" }

    step("new device: the right password, restore latest, byte for byte")
    val new = Coffer.connectWithPassword(options(newDir, repo), vault, PASSWORD.toByteArray())
    check(vaultStatus(vault).guessesLeft == max) { "a good login resets the count" }
    val restored = File(work, "restored")
    val r = new.restore("latest", restored.path, listOf(), Overwrite.NEVER, Listener(), null)
    check(r.complete && r.files == 3uL) { "restore: $r" }
    check(tree(chat) == tree(File(restored, "chat"))) { "restored files differ" }

    step("a third device from the recovery key restores only some paths")
    expectError("wrong_recovery_key") {
        Coffer.connectWithRecoveryKey(options(File(work, "third"), repo), "0".repeat(64).toByteArray(), null)
    }
    expectError("invalid_recovery_key") {
        Coffer.connectWithRecoveryKey(options(File(work, "third"), repo), "not a key".toByteArray(), null)
    }
    val third = Coffer.connectWithRecoveryKey(options(File(work, "third"), repo), recoveryKey, null)
    recoveryKey.fill(0)
    val some = File(work, "some")
    val rs = third.restore("latest", some.path, listOf("chat/notes.txt"), Overwrite.NEVER, null, null)
    check(rs.files == 1uL) { "partial restore: $rs" }
    check(tree(some).keys == setOf("chat/notes.txt")) { "partial restore wrote ${tree(some).keys}" }

    step("a cancelled backup raises `cancelled`")
    val big = File(work, "big")
    for (i in 0 until 40) randomFile(File(big, "v%02d.mp4".format(i)), MIB.toInt(), 100L + i)
    val bigBytes = 40 * MIB
    val handle = CancelHandle()
    expectError("cancelled") { old.backup(listOf(big.path), Listener(cancel = handle), handle) }
    check(handle.isCancelled()) { "the handle does not say it was cancelled" }
    check(old.snapshots().size == 1) { "a cancelled backup saved a snapshot" }

    step("a backup killed mid-way (SIGKILL) resumes without uploading finished packs again")
    val index = File(repo, "index")
    val indexedBefore = index.list()?.size ?: 0
    val java = File(System.getProperty("java.home"), "bin/java").path
    val proc = ProcessBuilder(
        java, "-Djna.library.path=" + System.getProperty("jna.library.path"),
        "-cp", System.getProperty("java.class.path"),
        "FlowTestKt", "child", File(work, "old").path, tokenFile, big.path,
    ).inheritIO().start()
    val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120)
    while ((index.list()?.size ?: 0) < indexedBefore + 2 && proc.isAlive && System.nanoTime() < deadline) {
        Thread.sleep(20)
    }
    check(proc.isAlive) { "the child finished (exit ${proc.exitValue()}) before two packs were indexed" }
    proc.destroyForcibly() // SIGKILL: no cleanup runs, as when Android kills the app
    proc.waitFor()
    check(old.snapshots().size == 1) { "the killed backup saved a snapshot" }
    val packs = index.list()!!.toList()
    val done = packs.sumOf { File(repo, "data/$it").length() }
    check(packs.size >= indexedBefore + 2) { "packs: $packs" }
    val resumed = old.backup(listOf(big.path), null, null)
    println("    ${done / 1024} KiB in ${packs.size} packs survived the kill; the resumed backup uploaded ${resumed.bytesAdded.toLong() / 1024} KiB of ${bigBytes / 1024} KiB")
    // Everything already packed and indexed is found by deduplication; only the rest
    // (plus index objects, trees and the snapshot: far under 1 MiB) is uploaded.
    val firstPacks = first.bytesAdded.toLong() // the chat folder's packs count in `done` too
    check(resumed.bytesAdded.toLong() <= bigBytes - (done - firstPacks) + MIB) {
        "the resumed backup uploaded ${resumed.bytesAdded} bytes; ${done - firstPacks} were already stored"
    }
    check(resumed.files == 40uL) { "resumed: $resumed" }
    val again = File(work, "big-restored")
    new.restore("latest", again.path, listOf(), Overwrite.NEVER, null, null)
    check(tree(big) == tree(File(again, "big"))) { "the resumed snapshot does not restore byte for byte" }

    step("a cancelled restore keeps only complete files; the same restore again finishes")
    val part = File(work, "big-part")
    val stop = CancelHandle()
    expectError("cancelled") {
        new.restore("latest", part.path, listOf(), Overwrite.NEVER, CancelAfter(stop, 10), stop)
    }
    val source = tree(big)
    val partial = tree(part)
    check(partial.isNotEmpty() && partial.size < source.size) { "${partial.size} of ${source.size} files after the cancel" }
    // Every file there is complete under its own name: no temporary or half-written one.
    for ((name, data) in partial) {
        check(source[File(name).relativeTo(File("big")).path] == data) { "$name is not a complete original" }
    }
    val rerun = new.restore("latest", part.path, listOf(), Overwrite.NEVER, null, null)
    check(rerun.complete && rerun.unchanged == partial.size.toULong()) { "rerun: $rerun" }
    check(tree(File(part, "big")) == source) { "the restore run again differs" }

    step("rotate the key, change the password, connect a fourth device with it at once")
    val rot = old.rotateKey(PASSWORD.toByteArray())
    check(rot.vaultUpdated && rot.recoveryKey.size == 79) { "rotate: vault updated ${rot.vaultUpdated}" }
    // The head the vault keeps is sealed again under the new key: a new device connects
    // right away, with no backup in between.
    check(rot.vaultHeadKept) { "rotate: the vault's head was not sealed under the new key" }
    rot.recoveryKey.fill(0)
    val newPassword = "a new password for the vault"
    old.changePassword(newPassword.toByteArray(), null)
    expectError("wrong_password") {
        Coffer.connectWithPassword(options(File(work, "fourth"), repo), vault, PASSWORD.toByteArray())
    }
    val fourth = Coffer.connectWithPassword(options(File(work, "fourth"), repo), vault, newPassword.toByteArray())
    check(fourth.snapshots().size == 2) { "the fourth device sees ${fourth.snapshots().size} snapshots" }
    val afterRotation = File(work, "after-rotation")
    fourth.restore("latest", afterRotation.path, listOf(), Overwrite.NEVER, null, null)
    check(tree(big) == tree(File(afterRotation, "big"))) { "restore after the rotation differs" }
    File(chat, "notes.txt").appendText("written after the rotation\n")
    check(old.backup(listOf(chat.path), null, null).vaultHeadKept) { "head after rotation" }
    check(fourth.snapshots().size == 3) { "the fourth device sees ${fourth.snapshots().size} snapshots" }

    step("disable: the vault record goes, the object refuses further calls")
    val d = old.disable(false)
    check(d.vaultRecordDeleted && !d.backupsDeleted) { "disable: $d" }
    expectError("config_missing") { old.status() }
    check(!vaultStatus(vault).exists) { "the vault still holds a key" }
}
