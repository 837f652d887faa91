"""FER2013 to model artifact: data loading, models, training, evaluation, export."""
