"""Amazon Bedrock: the Converse / ConverseStream adapter, and Titan embeddings (issue #7).

adapter      BedrockAdapter: endpoints, signing, HTTP, chat and stream
request      OpenAI request -> ConverseRequest; the refused-parameter table
messages     OpenAI messages -> system blocks and alternating user/assistant turns
media        images and documents as bytes (data: URLs decoded, http(s) fetched)
response     Converse answer -> ChatCompletion; stopReason and usage mapping
stream       ConverseStream events -> chunks
eventstream  the AWS event-stream binary framing, decoded incrementally
converse     the Converse wire Structs
signing      AWS credentials (botocore chain) and SigV4, or a Bedrock API key
errors       Bedrock exceptions -> the error tree
"""

from workers.providers.bedrock.adapter import BedrockAdapter

__all__ = ["BedrockAdapter"]
