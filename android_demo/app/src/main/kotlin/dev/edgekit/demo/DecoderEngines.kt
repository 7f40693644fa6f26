package dev.edgekit.demo

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import dev.edgekit.core.DecoderEngine
import java.io.File
import java.nio.FloatBuffer
import java.nio.LongBuffer
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/**
 * `model.ort` of a decoder on ONNX Runtime Android: each call feeds the new tokens with the cache
 * the last call returned (edgekit-app.json's "ort.cache": layers, KV heads, head size, names).
 */
class OrtDecoder(model: File, ort: Map<String, Any?>, override val maxSeqLen: Int, threads: Int = 4) : DecoderEngine, AutoCloseable {
    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession = env.createSession(model.absolutePath, OrtSession.SessionOptions().apply { setIntraOpNumThreads(threads) })
    @Suppress("UNCHECKED_CAST")
    private val cache = ort["cache"] as Map<String, Any?>
    private val layers = (cache["num_layers"] as Number).toInt()
    private val kvHeads = (cache["kv_heads"] as Number).toLong()
    private val headDim = (cache["head_dim"] as Number).toLong()
    private val positionIds = cache["uses_position_ids"] == true
    private var past: Map<String, OnnxTensor> = emptyMap()
    private var filled = 0

    private fun pastName(layer: Int, kind: String) = "past_key_values.$layer.$kind"
    private fun presentName(layer: Int, kind: String) = "present.$layer.$kind"

    override fun reset() {
        past.values.forEach { it.close() }
        val empty = longArrayOf(1, kvHeads, 0, headDim)
        past = (0 until layers).flatMap { l -> listOf("key", "value").map { k -> pastName(l, k) to OnnxTensor.createTensor(env, FloatBuffer.allocate(0), empty) } }.toMap()
        filled = 0
    }

    private fun run(tokens: IntArray): FloatArray {
        val n = tokens.size.toLong()
        val feeds = HashMap<String, OnnxTensor>(past)
        val made = ArrayList<OnnxTensor>()
        fun long(name: String, values: LongArray, shape: LongArray) {
            feeds[name] = OnnxTensor.createTensor(env, LongBuffer.wrap(values), shape).also { made.add(it) }
        }
        long("input_ids", LongArray(tokens.size) { tokens[it].toLong() }, longArrayOf(1, n))
        long("attention_mask", LongArray(filled + tokens.size) { 1L }, longArrayOf(1, filled + n))
        if (positionIds) long("position_ids", LongArray(tokens.size) { (filled + it).toLong() }, longArrayOf(1, n))
        val result = session.run(feeds)
        try {
            val logits = (result.get("logits").get() as OnnxTensor).floatBuffer
            val vocab = logits.remaining() / tokens.size
            val last = FloatArray(vocab).also { logits.position((tokens.size - 1) * vocab); logits.get(it) }
            val next = HashMap<String, OnnxTensor>()
            for (l in 0 until layers) for (k in listOf("key", "value")) {
                // copied out: the result (and its tensors) is closed below
                val present = result.get(presentName(l, k)).get() as OnnxTensor
                next[pastName(l, k)] = OnnxTensor.createTensor(env, present.floatBuffer, present.info.shape)
            }
            past.values.forEach { it.close() }
            past = next
            filled += tokens.size
            return last
        } finally {
            result.close()
            made.forEach { it.close() }
        }
    }

    override fun prefill(tokens: IntArray): FloatArray = run(tokens)

    override fun step(token: Int, position: Int): FloatArray {
        check(position == filled) { "step at $position, the cache holds $filled" }
        return run(intArrayOf(token))
    }

    override fun close() { past.values.forEach { it.close() }; session.close() }
}

/**
 * `model.pte` of a decoder on ExecuTorch: `forward(input_ids [1, n], cache_position [n])` gives
 * the last position's logits; the KV cache stays inside the program, so a step feeds one token.
 */
class ExecuTorchDecoder(model: File, override val maxSeqLen: Int) : DecoderEngine {
    private val module = Module.load(model.absolutePath)

    override fun reset() {}  // a sequence that starts at position 0 overwrites the cache as it goes

    private fun run(tokens: IntArray, start: Int): FloatArray {
        val ids = Tensor.fromBlob(LongArray(tokens.size) { tokens[it].toLong() }, longArrayOf(1, tokens.size.toLong()))
        val positions = Tensor.fromBlob(LongArray(tokens.size) { (start + it).toLong() }, longArrayOf(tokens.size.toLong()))
        return module.forward(EValue.from(ids), EValue.from(positions))[0].toTensor().dataAsFloatArray
    }

    override fun prefill(tokens: IntArray): FloatArray = run(tokens, 0)

    override fun step(token: Int, position: Int): FloatArray = run(intArrayOf(token), position)
}
