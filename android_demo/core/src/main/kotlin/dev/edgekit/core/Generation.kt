package dev.edgekit.core

import kotlin.math.exp
import kotlin.random.Random

/**
 * What runs an exported KV-cache decoder on the phone. The engine keeps the cache: [prefill]
 * writes the prompt's keys and values at positions 0 until prompt.size, each [step] one more
 * position; both return the logits of the last position.
 */
interface DecoderEngine {
    val maxSeqLen: Int
    fun reset()
    fun prefill(tokens: IntArray): FloatArray
    fun step(token: Int, position: Int): FloatArray
}

/** Greedy when [temperature] is 0; else sampling from the top-p nucleus at that temperature. */
data class Sampling(val temperature: Float = 0f, val topP: Float = 1f, val seed: Long = 0)

class Generator(private val engine: DecoderEngine, private val eosIds: Set<Int>) {
    /** New tokens after [prompt], at most [maxNewTokens], each handed to [onToken] as it comes. */
    fun generate(prompt: IntArray, maxNewTokens: Int, sampling: Sampling = Sampling(), onToken: (Int) -> Unit = {}): IntArray {
        require(prompt.isNotEmpty()) { "the prompt has no tokens" }
        val room = engine.maxSeqLen - prompt.size
        require(room > 0) { "the prompt's ${prompt.size} tokens fill the ${engine.maxSeqLen} positions the program holds" }
        val random = Random(sampling.seed)
        engine.reset()
        var logits = engine.prefill(prompt)
        val out = ArrayList<Int>()
        for (i in 0 until minOf(maxNewTokens, room)) {
            val token = pick(logits, sampling, random)
            out.add(token)
            onToken(token)
            if (token in eosIds || i == minOf(maxNewTokens, room) - 1) break
            logits = engine.step(token, prompt.size + i)
        }
        return out.toIntArray()
    }

    companion object {
        fun argmax(logits: FloatArray): Int {
            var best = 0
            for (i in 1 until logits.size) if (logits[i] > logits[best]) best = i
            return best
        }

        fun pick(logits: FloatArray, sampling: Sampling, random: Random): Int {
            if (sampling.temperature <= 0f) return argmax(logits)
            val top = logits.max()
            val weights = DoubleArray(logits.size) { exp(((logits[it] - top) / sampling.temperature).toDouble()) }
            val order = weights.indices.sortedByDescending { weights[it] }
            val total = weights.sum()
            val nucleus = ArrayList<Int>()
            var mass = 0.0
            for (i in order) {
                nucleus.add(i)
                mass += weights[i] / total
                if (mass >= sampling.topP) break
            }
            val kept = nucleus.sumOf { weights[it] }
            var r = random.nextDouble() * kept
            for (i in nucleus) { r -= weights[i]; if (r <= 0) return i }
            return nucleus.last()
        }
    }
}

/**
 * A chat template as plain pieces (edgekit-app.json's "chat"): one turn per role with `{content}`
 * where the text goes, what opens the answer, and the system turn written when there is none.
 */
class ChatFormat(private val turns: Map<String, String>, private val generationPrompt: String, private val defaultSystem: String) {
    /** The conversation [messages] (role to text), ready for the assistant's answer. */
    fun render(messages: List<Pair<String, String>>): String {
        val text = StringBuilder(if (messages.firstOrNull()?.first == "system") "" else defaultSystem)
        for ((role, content) in messages) {
            val turn = turns[role] ?: error("the chat template has no '$role' turn")
            text.append(turn.replace("{content}", content))
        }
        return text.append(generationPrompt).toString()
    }

    companion object {
        fun fromApp(chat: Map<String, Any?>): ChatFormat = ChatFormat(
            chat["turns"].obj().mapValues { it.value as String },
            chat["generation_prompt"] as String,
            chat["default_system"] as String,
        )
    }
}

/**
 * Streams generated text: each new token decodes the whole answer again, and only text that is
 * complete (no half of a UTF-8 character still waiting for its next byte) is handed on.
 */
class TextStream(private val decode: (IntArray) -> String, private val onText: (String) -> Unit) {
    private val tokens = ArrayList<Int>()
    private var shown = ""

    fun onToken(token: Int) {
        tokens.add(token)
        val text = decode(tokens.toIntArray())
        if (text.endsWith('\uFFFD') || !text.startsWith(shown)) return
        if (text.length > shown.length) { onText(text.substring(shown.length)); shown = text }
    }

    /** Everything decoded so far (what the stream has shown, plus any tail held back). */
    val text: String get() = decode(tokens.toIntArray())
}
