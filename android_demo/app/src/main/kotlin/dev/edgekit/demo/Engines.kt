package dev.edgekit.demo

import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtSession
import dev.edgekit.core.EncoderEngine
import java.io.File
import java.nio.LongBuffer
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/** The inputs an exported encoder takes, in the order edgekit-app.json lists them. */
private fun feeds(names: List<String>, ids: IntArray, mask: IntArray, types: IntArray): List<Pair<String, LongArray>> =
    names.map { name ->
        name to when (name) {
            "input_ids" -> ids
            "attention_mask" -> mask
            "token_type_ids" -> types
            else -> error("the app does not know the input '$name'")
        }.map { it.toLong() }.toLongArray()
    }

/** `model.ort` on ONNX Runtime Android (CPU; XNNPACK or NNAPI can be added to the options). */
class OrtEncoder(model: File, private val inputNames: List<String>, threads: Int = 4) : EncoderEngine, AutoCloseable {
    private val env = OrtEnvironment.getEnvironment()
    private val session: OrtSession = env.createSession(
        model.absolutePath,
        OrtSession.SessionOptions().apply { setIntraOpNumThreads(threads) },
    )

    override fun hiddenStates(inputIds: IntArray, attentionMask: IntArray, tokenTypeIds: IntArray): FloatArray {
        val shape = longArrayOf(1, inputIds.size.toLong())
        val tensors = feeds(inputNames, inputIds, attentionMask, tokenTypeIds).associate { (name, values) ->
            name to OnnxTensor.createTensor(env, LongBuffer.wrap(values), shape)
        }
        try {
            session.run(tensors, setOf("last_hidden_state")).use { result ->
                val hidden = result.get("last_hidden_state").get() as OnnxTensor
                val buffer = hidden.floatBuffer
                return FloatArray(buffer.remaining()).also { buffer.get(it) }
            }
        } finally {
            tensors.values.forEach { it.close() }
        }
    }

    override fun close() = session.close()
}

/** `model.pte` on ExecuTorch (XNNPACK delegate). Outputs come in the order edgekit-app.json lists them. */
class ExecuTorchEncoder(model: File, private val inputNames: List<String>, outputNames: List<String>) : EncoderEngine {
    private val module = Module.load(model.absolutePath)
    private val hiddenIndex = outputNames.indexOf("last_hidden_state").also { require(it >= 0) }

    override fun hiddenStates(inputIds: IntArray, attentionMask: IntArray, tokenTypeIds: IntArray): FloatArray {
        val shape = longArrayOf(1, inputIds.size.toLong())
        val args = feeds(inputNames, inputIds, attentionMask, tokenTypeIds).map { (_, values) ->
            EValue.from(Tensor.fromBlob(values, shape))
        }
        return module.forward(*args.toTypedArray())[hiddenIndex].toTensor().dataAsFloatArray
    }
}
