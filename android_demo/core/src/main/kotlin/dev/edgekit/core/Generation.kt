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
