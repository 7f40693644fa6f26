package dev.edgekit.demo

import dev.edgekit.core.EncoderEngine
import dev.edgekit.core.Json
import dev.edgekit.core.NoteIndex
import dev.edgekit.core.Pooling
import dev.edgekit.core.WordPieceTokenizer
import dev.edgekit.core.list
import dev.edgekit.core.obj
import java.io.File

/** An `edgekit export --target android` folder on the phone, read through its edgekit-app.json. */
class Artifact(val folder: File) {
    val app: Map<String, Any?> = Json.parse(File(folder, "edgekit-app.json").readText()).obj()
    val inputNames = app["inputs"].list().map { it.obj()["name"] as String }
    val outputNames = app["outputs"].list().map { it.obj()["name"] as String }
    val maxSeq = (app["bounds"].obj()["max_seq"] as Number).toInt()

    fun engine(runtime: String): EncoderEngine {
        val file = File(folder, app["runtime_files"].obj()[runtime] as String)
        return when (runtime) {
            "ort" -> OrtEncoder(file, inputNames)
            "executorch" -> ExecuTorchEncoder(file, inputNames, outputNames)
            else -> error("unknown runtime $runtime")
        }
    }

    fun noteIndex(runtime: String): NoteIndex {
        val tokenizerJson = Json.parse(File(folder, "tokenizer.json").readText()).obj()
        val tokenizer = WordPieceTokenizer.fromApp(app["tokenizer"].obj(), WordPieceTokenizer.vocabOf(tokenizerJson))
        return NoteIndex(tokenizer, engine(runtime), Pooling.fromApp(app["pooling"]?.obj()), maxSeq)
    }
}
