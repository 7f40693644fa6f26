package dev.edgekit.demo

import android.app.Activity
import android.content.Intent
import android.os.Bundle
import android.os.SystemClock
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import dev.edgekit.core.NoteIndex
import java.io.File
import java.util.concurrent.Executors

/**
 * Semantic search over the user's notes with the MiniLM artifact, on ONNX Runtime or ExecuTorch;
 * its last button opens the chat screen (ChatActivity).
 * The artifact is pushed with adb (android_demo/README.md) to
 * /sdcard/Android/data/dev.edgekit.demo/files/minilm-android/.
 */
class MainActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()
    private var index: NoteIndex? = null
    private lateinit var status: TextView
    private lateinit var results: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val folder = File(getExternalFilesDir(null), "minilm-android")
        val runtimes = RuntimePicker(this, executorchFirst = false)
        val note = EditText(this).apply { hint = "a note to remember" }
        val query = EditText(this).apply { hint = "search your notes" }
        status = TextView(this)
        results = TextView(this)
        setContentView(
            column(
                this,
                runtimes.view,
                Button(this).apply { text = "Load model"; setOnClickListener { load(folder, runtimes.runtime) } },
                note,
                Button(this).apply { text = "Add note"; setOnClickListener { addNote(note.text.toString()); note.text.clear() } },
                query,
                Button(this).apply { text = "Search"; setOnClickListener { search(query.text.toString()) } },
                status,
                results,
                Button(this).apply { text = "Chat (SmolLM2)"; setOnClickListener { startActivity(Intent(context, ChatActivity::class.java)) } },
            ),
        )
        status.text = if (File(folder, "edgekit-app.json").isFile) "artifact found in $folder" else "push the artifact to $folder first"
    }

    private fun load(folder: File, runtime: String) = worker.execute {
        val started = SystemClock.elapsedRealtime()
        val loaded = runCatching { Artifact(folder).noteIndex(runtime) }
        runOnUiThread {
            loaded.onSuccess { index = it; status.text = "$runtime loaded in ${SystemClock.elapsedRealtime() - started} ms" }
                .onFailure { status.text = "could not load: ${it.message}" }
        }
    }

    private fun addNote(text: String) = worker.execute {
        val idx = index ?: return@execute runOnUiThread { status.text = "load the model first" }
        val started = SystemClock.elapsedRealtime()
        idx.add(text)
        runOnUiThread { status.text = "${idx.size} notes (embedded in ${SystemClock.elapsedRealtime() - started} ms)" }
    }

    private fun search(text: String) = worker.execute {
        val idx = index ?: return@execute runOnUiThread { status.text = "load the model first" }
        val started = SystemClock.elapsedRealtime()
        val hits = idx.search(text, 5)
        runOnUiThread {
            status.text = "searched ${idx.size} notes in ${SystemClock.elapsedRealtime() - started} ms"
            results.text = hits.joinToString("\n") { (note, score) -> "%.3f  %s".format(score, note) }
        }
    }

    override fun onDestroy() {
        worker.shutdown()
        super.onDestroy()
    }
}
