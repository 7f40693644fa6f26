package dev.edgekit.demo

import android.app.Activity
import android.os.Bundle
import android.os.SystemClock
import android.widget.Button
import android.widget.EditText
import android.widget.TextView
import dev.edgekit.core.ByteLevelBpeTokenizer
import dev.edgekit.core.ChatFormat
import dev.edgekit.core.DecoderEngine
import dev.edgekit.core.Generator
import dev.edgekit.core.Json
import dev.edgekit.core.Sampling
import dev.edgekit.core.TextStream
import dev.edgekit.core.ints
import dev.edgekit.core.obj
import java.io.File
import java.util.concurrent.Executors

/**
 * Chat with the SmolLM2 artifact (`edgekit export --target android --precision int4`), tokens
 * streamed as they come, on ONNX Runtime or ExecuTorch. Pushed with adb (android_demo/README.md)
 * to /sdcard/Android/data/dev.edgekit.demo/files/smol-android/.
 */
class ChatActivity : Activity() {
    private val worker = Executors.newSingleThreadExecutor()
    private val messages = ArrayList<Pair<String, String>>()
    private var chat: Chat? = null
    private lateinit var transcript: TextView
    private lateinit var status: TextView

    /** What one loaded artifact needs to answer: its tokenizer, chat pieces, engine and EOS ids. */
    private class Chat(val tokenizer: ByteLevelBpeTokenizer, val format: ChatFormat, val generator: Generator, val maxSeq: Int)

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val folder = File(getExternalFilesDir(null), "smol-android")
        val runtimes = RuntimePicker(this, executorchFirst = true)
        val prompt = EditText(this).apply { hint = "ask something" }
        transcript = TextView(this)
        status = TextView(this)
        setContentView(
            column(
                this,
                runtimes.view,
                Button(this).apply { text = "Load model"; setOnClickListener { load(folder, runtimes.runtime) } },
                prompt,
                Button(this).apply { text = "Send"; setOnClickListener { send(prompt.text.toString()); prompt.text.clear() } },
                status,
                transcript,
            ),
        )
        status.text = if (File(folder, "edgekit-app.json").isFile) "artifact found in $folder" else "push the artifact to $folder first"
    }

    private fun load(folder: File, runtime: String) = worker.execute {
        val started = SystemClock.elapsedRealtime()
        val loaded = runCatching {
            val app = Json.parse(File(folder, "edgekit-app.json").readText()).obj()
            val tokenizer = ByteLevelBpeTokenizer.fromTokenizerJson(Json.parse(File(folder, "tokenizer.json").readText()).obj())
            val format = ChatFormat.fromApp(app["chat"]?.obj() ?: error("this artifact's tokenizer has no chat template"))
            val file = File(folder, app["runtime_files"].obj()[runtime] as String)
            val maxSeq = (app["executorch"].obj()["max_seq"] as Number).toInt()
            val engine: DecoderEngine = when (runtime) {
                "ort" -> OrtDecoder(file, app["ort"].obj(), maxSeq)
                else -> ExecuTorchDecoder(file, maxSeq)
            }
            Chat(tokenizer, format, Generator(engine, app["eos_token_ids"].ints().toSet()), maxSeq)
        }
        runOnUiThread {
            loaded.onSuccess { chat = it; status.text = "$runtime loaded in ${SystemClock.elapsedRealtime() - started} ms" }
                .onFailure { status.text = "could not load: ${it.message}" }
        }
    }

    private fun send(text: String) = worker.execute {
        val c = chat ?: return@execute runOnUiThread { status.text = "load the model first" }
        messages.add("user" to text)
        val prompt = c.tokenizer.encode(c.format.render(messages), withSpecialTokens = false)
        if (prompt.size >= c.maxSeq) {
            messages.clear()
            return@execute runOnUiThread { status.text = "the conversation filled the ${c.maxSeq} positions; starting over" }
        }
        runOnUiThread { transcript.append("\n> $text\n") }
        val started = SystemClock.elapsedRealtime()
        val stream = TextStream({ c.tokenizer.decode(it) }) { piece -> runOnUiThread { transcript.append(piece) } }
        val tokens = c.generator.generate(prompt, 256, Sampling(temperature = 0.7f, topP = 0.9f, seed = started), onToken = stream::onToken)
        val seconds = (SystemClock.elapsedRealtime() - started) / 1000.0
        messages.add("assistant" to stream.text)
        runOnUiThread { status.text = "${tokens.size} tokens in %.1f s (prompt %d tokens)".format(seconds, prompt.size) }
    }

    override fun onDestroy() {
        worker.shutdown()
        super.onDestroy()
    }
}
