package dev.edgekit.core

import kotlin.math.sqrt

/** What runs an exported text encoder: ONNX Runtime Android or ExecuTorch on the phone. */
interface EncoderEngine {
    /** The model's `last_hidden_state` of one text, [tokens x hidden] row-major. */
    fun hiddenStates(inputIds: IntArray, attentionMask: IntArray, tokenTypeIds: IntArray): FloatArray
}

/** sentence-transformers pooling as edgekit-app.json's "pooling" section names it. */
class Pooling(private val mode: String, private val normalize: Boolean) {
    fun pool(hidden: FloatArray, mask: IntArray): FloatArray {
        val tokens = mask.size
        val width = hidden.size / tokens
        val out = FloatArray(width)
        when (mode) {
            "cls" -> System.arraycopy(hidden, 0, out, 0, width)
            "max" -> {
                out.fill(Float.NEGATIVE_INFINITY)
                for (t in 0 until tokens) if (mask[t] != 0) for (h in 0 until width) out[h] = maxOf(out[h], hidden[t * width + h])
            }
            "mean", "mean_sqrt_len" -> {
                var count = 0
                for (t in 0 until tokens) if (mask[t] != 0) {
                    count++
                    for (h in 0 until width) out[h] += hidden[t * width + h]
                }
                val div = if (mode == "mean") count.toFloat() else sqrt(count.toFloat())
                for (h in 0 until width) out[h] /= maxOf(div, 1e-9f)
            }
            else -> error("unknown pooling mode $mode")
        }
        if (normalize) {
            val norm = sqrt(out.fold(0.0) { acc, v -> acc + v * v }).toFloat()
            for (h in 0 until width) out[h] /= maxOf(norm, 1e-12f)
        }
        return out
    }

    companion object {
        fun fromApp(section: Map<String, Any?>?): Pooling =
            Pooling(section?.get("mode") as String? ?: "cls", section?.get("normalize") as Boolean? ?: false)
    }
}

fun cosine(a: FloatArray, b: FloatArray): Float {
    var dot = 0.0
    var na = 0.0
    var nb = 0.0
    for (i in a.indices) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
    return (dot / (sqrt(na) * sqrt(nb) + 1e-12)).toFloat()
}

/** Semantic search over a user's notes: embed each note once, rank by cosine to the query. */
class NoteIndex(
    private val tokenizer: WordPieceTokenizer,
    private val engine: EncoderEngine,
    private val pooling: Pooling,
    private val maxLength: Int,
) {
    private val notes = ArrayList<Pair<String, FloatArray>>()

    fun embed(text: String): FloatArray {
        val ids = tokenizer.encode(text, maxLength)
        val mask = IntArray(ids.size) { 1 }
        return pooling.pool(engine.hiddenStates(ids, mask, IntArray(ids.size)), mask)
    }

    fun add(note: String) { notes.add(note to embed(note)) }

    val size: Int get() = notes.size

    /** The [k] notes closest to [query], best first, with their cosine. */
    fun search(query: String, k: Int = 5): List<Pair<String, Float>> {
        val q = embed(query)
        return notes.map { (text, e) -> text to cosine(q, e) }.sortedByDescending { it.second }.take(k)
    }
}
